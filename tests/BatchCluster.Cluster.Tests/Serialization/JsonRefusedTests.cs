using Akka.Actor;
using Akka.Configuration;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Tests.Serialization;

/// <summary>
/// The audit reached Akka's JSON serializer (identifier 1, Newtonsoft with TypeNameHandling.All)
/// on a node: a payload naming a .NET type had that type built on arrival. A peer that speaks
/// plain Akka sends such a payload here over a real remote connection; a node of ours must
/// refuse it (the type is never constructed) and still take the next message of our protocol.
/// </summary>
public sealed class JsonRefusedTests
{
    /// <summary>Counts its constructions: Newtonsoft builds it when it reads a payload naming it.</summary>
    public sealed class JsonCanary
    {
        public static int Constructed;
        public JsonCanary() => Interlocked.Increment(ref Constructed);
        public string Note { get; set; } = "";
    }

    private sealed class Recorder : ReceiveActor
    {
        public Recorder(List<object> received, TaskCompletionSource done)
        {
            ReceiveAny(message =>
            {
                lock (received) received.Add(message);
                if (message is TrainingProtocol.WorkerLeaving) done.TrySetResult();
            });
        }
    }

    /// <returns>What the receiver got, and how many canaries were built meanwhile.</returns>
    private static async Task<(List<object> Received, int Constructed)> SendJsonThenOurs(Config receiverConfig)
    {
        var canary = new JsonCanary { Note = "System.Diagnostics.Process could stand here" };
        Interlocked.Exchange(ref JsonCanary.Constructed, 0); // from here on, only a deserializer builds one
        using var receiver = ActorSystem.Create(ClusterBootstrap.SystemName, receiverConfig);
        using var peer = Security.PlainAkkaPeer.Start();
        var received = new List<object>();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.ActorOf(Props.Create(() => new Recorder(received, done)), "target");
        var address = ((ExtendedActorSystem)receiver).Provider.DefaultAddress;
        var target = peer.ActorSelection($"{address}/user/target");
        target.Tell(canary);
        target.Tell(new TrainingProtocol.WorkerLeaving("after the canary")); // same sender, same receiver: arrives after it
        await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.WhenAll(peer.Terminate(), receiver.Terminate());
        lock (received) return (received.ToList(), JsonCanary.Constructed);
    }

    [Fact]
    public async Task A_node_refuses_json_from_the_network_and_keeps_the_connection()
    {
        var (received, constructed) = await SendJsonThenOurs(ClusterBootstrap.ConfigFor(ClusterBootstrap.WorkerRole, "127.0.0.1", 0));
        Assert.Equal(0, constructed);
        Assert.DoesNotContain(received, m => m is JsonCanary);
        Assert.Contains(received, m => m is TrainingProtocol.WorkerLeaving);
    }

    /// <summary>The control: a node with Akka's defaults builds the canary (the test can tell the difference).</summary>
    [Fact]
    public async Task With_akka_defaults_the_same_payload_is_built()
    {
        var (received, constructed) = await SendJsonThenOurs(Security.PlainAkkaPeer.Config);
        Assert.True(constructed > 0);
        Assert.Contains(received, m => m is JsonCanary);
    }

    [Fact]
    public async Task A_type_without_a_serializer_of_its_own_cannot_be_sent()
    {
        using var node = ActorSystem.Create(ClusterBootstrap.SystemName, ClusterBootstrap.ConfigFor(ClusterBootstrap.WorkerRole, "127.0.0.1", 0));
        Assert.ThrowsAny<Exception>(() => node.Serialization.FindSerializerFor(new JsonCanary()).ToBinary(new JsonCanary()));
        await node.Terminate();
    }
}
