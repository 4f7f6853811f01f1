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

    /// <summary>
    /// The audit's worker exited when a stranger sent it <c>RunEnded</c> in the coordinator's name (a path it typed,
    /// no UID) and when a member with the coordinator role that did not host the singleton refused it. Both now
    /// reach an accepted worker over real remote connections while the run waits for its second worker: the worker
    /// is still there once it has handled them (an Identify sent after them on the same connection is answered), and
    /// the run then trains its 200 steps on both workers.
    /// </summary>
    [Fact]
    public async Task A_worker_ignores_the_coordinators_name_typed_by_a_stranger_and_a_coordinator_role_member_that_does_not_host_the_run()
    {
        var (config, data) = PlainAkkaPeer.TinyRun(steps: 200);
        var events = new EventCollector();
        var joined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        events.Emitted += e => { if (EventCollector.IsOfType(e, "WorkerJoined")) joined.TrySetResult(); };
        await using var cluster = await MultiNode.InProcessCluster.StartAsync(config, data, minWorkers: 2, events.Run("forged"));
        var workerSystem = await cluster.AddWorkerAsync();
        await joined.Task.WaitAsync(TimeSpan.FromMinutes(1)); // accepted and ready; the run waits for a second worker
        var workerPath = $"{((Akka.Actor.ExtendedActorSystem)workerSystem).Provider.DefaultAddress}/user/worker";

        using var peer = PlainAkkaPeer.Start();
        var standby = ClusterBootstrap.Start(ClusterBootstrap.CoordinatorRole, "127.0.0.1", 0);
        try
        {
            // A stranger names the run's supervisor and its coordinator at the coordinator node's address.
            var worker = await PlainAkkaPeer.ResolveOnceStartedAsync(peer, workerPath, TimeSpan.FromSeconds(20));
            string singleton = $"akka.tcp://{ClusterBootstrap.SystemName}@{cluster.Seed.Host}:{cluster.Seed.Port}{ClusterBootstrap.CoordinatorSingletonPath}";
            foreach (var typed in new[] { singleton, $"{singleton}/{CoordinatorName}" })
            {
                var named = ((Akka.Actor.ExtendedActorSystem)peer).Provider.ResolveActorRef(typed);
                worker.Tell(new Protocol.TrainingProtocol.RunEnded("forged", false), named);
                worker.Tell(new Protocol.TrainingProtocol.WorkerRejected("forged"), named);
            }
            await PlainAkkaPeer.ResolveOnceStartedAsync(peer, workerPath, TimeSpan.FromSeconds(5)); // handled, and still there

            // A member with the coordinator role, younger than the singleton's host, speaks from the same paths on itself.
            Assert.True(await ClusterBootstrap.JoinAsync(standby, [cluster.Seed], TimeSpan.FromSeconds(30)));
            var received = new List<object>();
            string[] names = ["singleton", CoordinatorName];
            standby.ActorOf(Akka.Actor.Props.Create(() => new Nest(names, received)), ClusterBootstrap.SingletonManagerName);
            var member = await PlainAkkaPeer.ResolveOnceStartedAsync(standby, $"{ClusterBootstrap.CoordinatorSingletonPath}/{CoordinatorName}", TimeSpan.FromSeconds(10));
            var workerFromMember = await PlainAkkaPeer.ResolveOnceStartedAsync(standby, workerPath, TimeSpan.FromSeconds(20));
            workerFromMember.Tell(new Protocol.TrainingProtocol.WorkerRejected("forged by a member"), member);
            workerFromMember.Tell(new Protocol.TrainingProtocol.RunEnded("forged", false), member);
            workerFromMember.Tell(new Protocol.TrainingProtocol.WorkerAccepted("another-run", new Protocol.TrainingProtocol.RunSpec("synthetic", 16, "mlp", [8], 1)), member);
            await PlainAkkaPeer.ResolveOnceStartedAsync(standby, workerPath, TimeSpan.FromSeconds(5));

            await cluster.AddWorkerAsync();
            var result = await cluster.Completion.Task.WaitAsync(TimeSpan.FromMinutes(1));
            Assert.Equal(200, result.Summary.Steps);
            Assert.Equal(2, result.Summary.Workers);
            Assert.Empty(events.OfType("WorkerLeft"));
            lock (received) Assert.Empty(received); // no WorkerReady: not re-pointed at a member that does not host the singleton
        }
        finally
        {
            await standby.Terminate();
            await peer.Terminate();
        }
    }

    /// <summary>The first coordinator's name under the run's supervisor.</summary>
    private const string CoordinatorName = BatchCluster.Cluster.Actors.RunSupervisor.CoordinatorName + "-0";

    /// <summary>Actors named <paramref name="names"/>, each the child of the one before; the last keeps what it receives.</summary>
    private sealed class Nest : Akka.Actor.ReceiveActor
    {
        public Nest(string[] names, List<object> received)
        {
            var rest = names.Skip(1).ToArray();
            var props = rest.Length == 0
                ? Akka.Actor.Props.Create(() => new PlainAkkaPeer.Recorder(received))
                : Akka.Actor.Props.Create(() => new Nest(rest, received));
            Context.ActorOf(props, names[0]);
        }
    }
}
