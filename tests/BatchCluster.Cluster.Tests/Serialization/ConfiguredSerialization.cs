using Akka.Actor;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Serialization;

namespace BatchCluster.Cluster.Tests.Serialization;

/// <summary>
/// One actor system with a cluster node's configuration (its serializer bindings are what the tests read), shared by
/// the cases of a test class. A system per case, as a TestKit base makes, spent ~5 s of remoting shutdown per case:
/// about a minute of the suite for tests that take milliseconds.
/// </summary>
public sealed class ConfiguredSerialization : IDisposable
{
    public ActorSystem System { get; } = ActorSystem.Create("batchcluster", ClusterBootstrap.ConfigFor(ClusterBootstrap.WorkerRole, "127.0.0.1", 0));

    /// <summary>The serializer the configuration binds to the training protocol's messages.</summary>
    public TrainingMessageSerializer Serializer => (TrainingMessageSerializer)System.Serialization.FindSerializerForType(typeof(TrainingProtocol.RunEnded));

    public void Dispose() => System.Terminate().Wait(TimeSpan.FromSeconds(30));
}
