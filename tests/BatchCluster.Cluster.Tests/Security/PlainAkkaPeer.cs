using Akka.Actor;
using Akka.Configuration;

namespace BatchCluster.Cluster.Tests.Security;

/// <summary>
/// A process that speaks plain Akka.Remote (not a cluster member, no TLS) with our serializer bound
/// for our protocol and Akka's defaults for the rest: what a careless or hostile neighbour on the
/// network runs. <see cref="Recorder"/> keeps what its actors receive.
/// </summary>
public static class PlainAkkaPeer
{
    public static Config Config { get; } = ConfigurationFactory.ParseString("""
        akka.actor.provider = remote
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        akka.actor.serializers.batchcluster = "BatchCluster.Cluster.Serialization.TrainingMessageSerializer, BatchCluster.Cluster"
        akka.actor.serialization-bindings { "BatchCluster.Cluster.Protocol.ITrainingMessage, BatchCluster.Cluster" = batchcluster }
        akka.loglevel = ERROR
        """);

    public static ActorSystem Start() => ActorSystem.Create("peer", Config);

    /// <summary>Keeps every message it receives (lock the list to read it).</summary>
    public sealed class Recorder : ReceiveActor
    {
        public Recorder(List<object> received) => ReceiveAny(m => { lock (received) received.Add(m); });
    }
}
