using Akka.Actor;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Nodes;

/// <summary>On a standby coordinator node: learns that the run finished on another coordinator node.</summary>
public sealed class RunWatch : ReceiveActor
{
    public static Props Props(TaskCompletionSource<bool> ended) => Akka.Actor.Props.Create(() => new RunWatch(ended));

    public RunWatch(TaskCompletionSource<bool> ended) =>
        Receive<TrainingProtocol.RunEnded>(m => ended.TrySetResult(m.Succeeded));
}
