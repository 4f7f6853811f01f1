using BatchCluster.Cluster.Nodes;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Tests.Security;

/// <summary>
/// The audit registered a process that was no member of the cluster as a worker (then poisoned the
/// model through it). A coordinator now admits only members: a plain Akka peer that sends the same
/// registration over a real remote connection is never accepted, while the run trains on its member worker.
/// </summary>
public sealed class NonMemberRegistrationTests
{
    [Fact]
    public async Task A_process_that_is_not_a_member_cannot_register()
    {
        var (config, data) = PlainAkkaPeer.TinyRun(steps: 30);
        await using var cluster = await MultiNode.InProcessCluster.StartAsync(config, data, minWorkers: 1, TrainingFixtures.SilentEvents("outsider"));
        using var peer = PlainAkkaPeer.Start();
        var received = new List<object>();
        var outsider = peer.ActorOf(Akka.Actor.Props.Create(() => new PlainAkkaPeer.Recorder(received)), "worker");
        var resolved = await PlainAkkaPeer.ResolveOnceStartedAsync(peer, // the registration can reach the coordinator
            $"akka.tcp://{ClusterBootstrap.SystemName}@{cluster.Seed.Host}:{cluster.Seed.Port}{ClusterBootstrap.CoordinatorSingletonPath}", TimeSpan.FromSeconds(20));
        resolved.Tell(new Protocol.TrainingProtocol.RegisterWorker("outsider", "nowhere", "cpu", 1, Protocol.TrainingProtocol.Version), outsider);

        await cluster.AddWorkerAsync();
        var result = await cluster.Completion.Task.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(30, result.Summary.Steps);
        Assert.Equal(1, result.Summary.Workers);
        lock (received) Assert.DoesNotContain(received, m => m is Protocol.TrainingProtocol.WorkerAccepted);
        await peer.Terminate();
    }
}

/// <summary>
/// The audit sent a worker node <c>RunEnded</c> (it exited) and <c>WorkerAccepted</c> (to re-point it at
/// the sender) from a process that was not its coordinator. Across a real remote connection now: the
/// worker ignores both, answers nothing, and the run trains to its end on it.
/// </summary>
public sealed class HostileCoordinatorMessagesTests
{
    [Fact]
    public async Task A_worker_ignores_acceptance_and_the_end_of_the_run_from_a_stranger()
    {
        var (config, data) = PlainAkkaPeer.TinyRun(steps: 200);
        var firstStep = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var cluster = await MultiNode.InProcessCluster.StartAsync(config, data, minWorkers: 1, TrainingFixtures.SilentEvents("hostile"),
            onStep: (_, _) => firstStep.TrySetResult());
        var workerSystem = await cluster.AddWorkerAsync(slowdown: 20); // a few seconds of run: the stranger's messages arrive mid-run
        await firstStep.Task.WaitAsync(TimeSpan.FromMinutes(1));

        using var peer = PlainAkkaPeer.Start();
        var received = new List<object>();
        var stranger = peer.ActorOf(Akka.Actor.Props.Create(() => new PlainAkkaPeer.Recorder(received)), "coordinator");
        var address = ((Akka.Actor.ExtendedActorSystem)workerSystem).Provider.DefaultAddress;
        var worker = await PlainAkkaPeer.ResolveOnceStartedAsync(peer, $"{address}/user/worker", TimeSpan.FromSeconds(20));
        worker.Tell(new Protocol.TrainingProtocol.WorkerAccepted("another-run", new Protocol.TrainingProtocol.RunSpec("synthetic", 16, "mlp", [8], 1)), stranger);
        worker.Tell(new Protocol.TrainingProtocol.RunEnded("hostile", false), stranger);

        var result = await cluster.Completion.Task.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(200, result.Summary.Steps);
        lock (received) Assert.Empty(received); // no WorkerReady: it was not re-pointed
        await peer.Terminate();
    }
}
