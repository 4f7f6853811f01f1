using System.Collections.Concurrent;
using Akka.TestKit.Xunit2;
using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Tests.Links;

/// <summary>
/// Which way a worker's messages go: in a star run a request arrives on the data connection as if from the coordinator
/// whose offer it connected to, and a result leaves there too, right behind its gradient; in a ring run the result
/// message still goes through Akka (the ring's frames share the connection).
/// </summary>
public sealed class WorkerLinksRouteTests() : TestKit(Cluster.Local.LocalCluster.AkkaConfig)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private const int Count = 10;
    private const int WorkerKey = 2;
    private static readonly DataPlaneRun Run = new(FrameHeader.TagOf("run"), Count, TransferPrecision.Fp32);
    private readonly BlockingCollection<object> _atCoordinator = new();

    private static TrainingProtocol.ShareComputed Result(ReadOnlyMemory<float> gradient) =>
        new("run", 4, 4, 1, 8, 2.5, gradient, 3.0, 1.0, 1.5, 0);

    private (DataPlaneServer Server, WorkerLinks Links, Akka.TestKit.TestProbe Coordinator) Connected(bool ring)
    {
        var server = new DataPlaneServer("127.0.0.1", 0, Run, _atCoordinator.Add, _ => { },
            onShard: ring ? _atCoordinator.Add : null, onMessage: ring ? null : _atCoordinator.Add);
        var coordinator = CreateTestProbe();
        var links = new WorkerLinks(TestActor, null, Sys.Log);
        links.StartRun("run", Count);
        Assert.True(links.Connect(new DataPlaneOffer(server.Host, server.Port, server.Expect(WorkerKey), TransferPrecision.Fp32, Ring: ring), coordinator.Ref));
        return (server, links, coordinator);
    }

    [Fact]
    public void In_a_star_run_a_request_comes_from_the_coordinator_on_the_connection_and_the_result_leaves_behind_its_gradient()
    {
        var (server, links, coordinator) = Connected(ring: false);
        using (server)
        using (links)
        {
            var share = new TrainingProtocol.ComputeShare("run", 4, 1, [1, 2], 2, new TrainingProtocol.ParameterSnapshot(4, ReadOnlyMemory<float>.Empty));
            Assert.True(server.SendMessage(WorkerKey, share));
            Assert.Equal(4, ExpectMsg<TrainingProtocol.ComputeShare>(Wait).Step);
            Assert.Equal(coordinator.Ref, LastSender); // the worker's "work only from my coordinator" check sees who sent it

            var gradient = TensorBuffers.Rent(Count);
            gradient.AsSpan().Fill(0.25f);
            links.Reply(coordinator.Ref, Result(gradient), gradient);
            Assert.True(_atCoordinator.TryTake(out var first, Wait));
            Assert.All(Assert.IsType<GradientArrived>(first).Values, v => Assert.Equal(0.25f, v));
            Assert.True(_atCoordinator.TryTake(out var second, Wait));
            var message = Assert.IsType<TrainingProtocol.ShareComputed>(Assert.IsType<MessageArrived>(second).Message);
            Assert.True(message.GradientSum.IsEmpty);
            Assert.Equal(8, message.SampleCount);
            Assert.False(coordinator.HasMessages); // a local Tell would be there already: nothing went through Akka
        }
    }

    /// <summary>
    /// The request comes on the data connection, a skipped step's notice through Akka: they are not ordered with each other,
    /// so a request at the version after a skip can arrive before the skip does. It waits, and runs when the skip says its
    /// parameters are the ones already here.
    /// </summary>
    [Fact]
    public void A_request_that_overtakes_the_skip_of_its_version_waits_for_it_and_then_runs()
    {
        var (server, links, _) = Connected(ring: false);
        using (server)
        using (links)
        {
            Assert.Equal(ParameterSend.Queued, server.SendParameters(WorkerKey, 4, new float[Count]));
            var arrived = ExpectMsg<ParametersArrived>(Wait);
            Assert.Empty(links.OnParametersArrived(arrived));

            var atVersion5 = new TrainingProtocol.ParameterSnapshot(5, ReadOnlyMemory<float>.Empty);
            Assert.False(links.ParametersReady(atVersion5)); // step 4 was skipped, but the worker does not know yet
            int runs = 0;
            links.Defer(5, () => runs++);
            var due = links.Skipped(new TrainingProtocol.StepSkipped("run", 4, 5));
            foreach (var run in due) run();
            Assert.Equal(1, runs);
            Assert.True(links.ParametersReady(atVersion5));
        }
    }

    [Fact]
    public void In_a_ring_run_the_result_message_goes_through_akka()
    {
        var (server, links, coordinator) = Connected(ring: true);
        using (server)
        using (links)
        {
            var gradient = TensorBuffers.Rent(Count);
            links.Reply(coordinator.Ref, Result(gradient), gradient);
            var message = coordinator.ExpectMsg<TrainingProtocol.ShareComputed>(Wait);
            Assert.True(message.GradientSum.IsEmpty);
        }
    }
}
