using Akka.Actor;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// On a standby coordinator node: learns that the run finished on another coordinator node. Only
/// the coordinator singleton on a coordinator-role member of this cluster may say so.
/// </summary>
public sealed class RunWatch : ReceiveActor
{
    public static Props Props(TaskCompletionSource<bool> ended) => Akka.Actor.Props.Create(() => new RunWatch(ended));

    public RunWatch(TaskCompletionSource<bool> ended) =>
        Receive<TrainingProtocol.RunEnded>(new Predicate<TrainingProtocol.RunEnded>(_ => FromCoordinator(Sender)), m => { ended.TrySetResult(m.Succeeded); });

    private bool FromCoordinator(IActorRef sender)
    {
        var elements = sender.Path.Elements;
        if (elements.Count < 2 || elements[0] != "user" || elements[1] != ClusterBootstrap.SingletonManagerName) return false;
        return Akka.Cluster.Cluster.Get(Context.System).State.Members
            .Any(m => m.Address.Equals(sender.Path.Address) && m.HasRole(ClusterBootstrap.CoordinatorRole));
    }
}
