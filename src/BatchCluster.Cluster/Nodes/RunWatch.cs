using Akka.Actor;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// On a standby coordinator node: learns that the run finished on another coordinator node. Only
/// the coordinator singleton on the member that hosts it now may say so (<see cref="CoordinatorIdentity"/>).
/// </summary>
public sealed class RunWatch : ReceiveActor
{
    public static Props Props(TaskCompletionSource<bool> ended) => Akka.Actor.Props.Create(() => new RunWatch(ended));

    public RunWatch(TaskCompletionSource<bool> ended) =>
        Receive<TrainingProtocol.RunEnded>(new Predicate<TrainingProtocol.RunEnded>(_ => FromCoordinator(Sender)), m => { ended.TrySetResult(m.Succeeded); });

    private bool FromCoordinator(IActorRef sender) => CoordinatorIdentity.IsOnSingletonHost(sender, Akka.Cluster.Cluster.Get(Context.System));
}
