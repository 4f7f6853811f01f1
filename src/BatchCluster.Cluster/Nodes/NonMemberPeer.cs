using Akka.Actor;
using Akka.Configuration;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// A process that speaks plain Akka.Remote (not a cluster member, no TLS) with our serializer bound for our protocol
/// and Akka's defaults for the rest: what a careless or hostile neighbour on the network runs. The flood benchmark
/// and the security tests play that neighbour with it.
/// </summary>
public static class NonMemberPeer
{
    public static Config Config { get; } = ConfigurationFactory.ParseString("""
        akka.actor.provider = remote
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        akka.actor.serializers.batchcluster = "BatchCluster.Cluster.Serialization.TrainingMessageSerializer, BatchCluster.Cluster"
        akka.actor.serialization-bindings { "BatchCluster.Cluster.Protocol.ITrainingMessage, BatchCluster.Cluster" = batchcluster }
        akka.loglevel = ERROR
        """);

    public static ActorSystem Start() => ActorSystem.Create("peer", Config);

    /// <summary>
    /// The actor at <paramref name="path"/> once it exists: the coordinator singleton is created a moment after its
    /// node is up, and until then an Identify is answered with no actor (ResolveOne fails at once). Asks again every
    /// 100 ms until <paramref name="within"/> has passed.
    /// </summary>
    public static async Task<IActorRef> ResolveOnceStartedAsync(ActorSystem peer, string path, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            try { return await peer.ActorSelection(path).ResolveOne(TimeSpan.FromSeconds(2)); }
            catch (ActorNotFoundException) when (DateTime.UtcNow < deadline) { await Task.Delay(100); }
        }
    }
}
