using Akka.Actor;
using Akka.TestKit.Xunit2;
using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Tests.Serialization;

/// <summary>Our serializer between two real nodes: a tensor larger than a frame travels in chunks.</summary>
public sealed class TensorAcrossNodesTests() : TestKit(ClusterBootstrap.ConfigFor(ClusterBootstrap.WorkerRole, "127.0.0.1", 0))
{
    /// <summary>A tensor far larger than the 4 MiB frame crosses a real remote connection in chunks and arrives intact.</summary>
    [Fact]
    public async Task A_tensor_larger_than_the_frame_size_arrives_intact_across_nodes()
    {
        var big = Enumerable.Range(0, 3_000_000).Select(i => (float)Math.Sin(i)).ToArray(); // 12 MB
        using var receiver = ClusterBootstrap.Start(ClusterBootstrap.WorkerRole, "127.0.0.1", 0);
        var arrived = new TaskCompletionSource<TrainingProtocol.ShareComputed>();
        receiver.ActorOf(Props.Create(() => new ReassemblingReceiver(arrived)), "receiver");
        var address = ((ExtendedActorSystem)receiver).Provider.DefaultAddress;
        var remote = await Sys.ActorSelection($"{address}/user/receiver").ResolveOne(TimeSpan.FromSeconds(10));

        var message = new TrainingProtocol.ShareComputed("run", 5, 5, 2, 64, 3.5, big, 1, 2, 3, 4);
        TensorTransport.Tell(remote, message, TestActor);
        var received = await arrived.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(big, received.GradientSum.ToArray());
        Assert.Equal(message with { GradientSum = ReadOnlyMemory<float>.Empty }, received with { GradientSum = ReadOnlyMemory<float>.Empty });
        await receiver.Terminate();
    }

    private sealed class ReassemblingReceiver : ReceiveActor
    {
        public ReassemblingReceiver(TaskCompletionSource<TrainingProtocol.ShareComputed> arrived)
        {
            var reassembly = new TensorReassembly { ExpectedLength = 3_000_000 };
            Receive<TensorTransferStart>(start => reassembly.Begin(Sender.Path.ToString(), start));
            Receive<TensorChunk>(chunk =>
            {
                if (reassembly.Add(Sender.Path.ToString(), chunk) is TrainingProtocol.ShareComputed complete) arrived.TrySetResult(complete);
            });
            Receive<TrainingProtocol.ShareComputed>(whole => arrived.TrySetResult(whole));
        }
    }
}
