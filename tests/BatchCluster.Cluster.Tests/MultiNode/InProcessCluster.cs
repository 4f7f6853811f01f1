using Akka.Actor;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Tests.MultiNode;

/// <summary>
/// A real multi-node cluster inside the test process: one ActorSystem per node on 127.0.0.1 with
/// port 0, joined over TCP, the coordinator as a cluster singleton, workers through the proxy.
/// Every message crosses a real Akka.Remote connection and our serializer.
/// </summary>
public sealed class InProcessCluster : IAsyncDisposable
{
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(30);
    private readonly List<ActorSystem> _workers = [];

    public ActorSystem Coordinator { get; }
    public NodeAddress Seed { get; }
    public TaskCompletionSource<RunResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public List<StepRecord> Steps { get; } = [];
    public IReadOnlyList<ActorSystem> WorkerSystems => _workers;
    private readonly DataSplits _data;

    private InProcessCluster(ActorSystem coordinator, DataSplits data)
    {
        Coordinator = coordinator;
        var address = Akka.Cluster.Cluster.Get(coordinator).SelfAddress;
        Seed = new NodeAddress(address.Host!, address.Port!.Value);
        _data = data;
    }

    /// <param name="startWorkers">Ready workers before the first step (default: <paramref name="minWorkers"/>).</param>
    /// <param name="recoverFromCheckpoints">As a coordinator node with --checkpoint-every: a failed coordinator is rebuilt from the newest checkpoint.</param>
    public static async Task<InProcessCluster> StartAsync(TrainingConfig config, DataSplits data, int minWorkers, RunEvents events,
        TimeSpan? stepDeadline = null, Action<StepRecord, TrainingSession>? onStep = null, int? startWorkers = null, bool recoverFromCheckpoints = false)
    {
        TorchRuntime.Initialise(1);
        var system = ClusterBootstrap.Start(ClusterBootstrap.CoordinatorRole, "127.0.0.1", 0);
        Assert.True(await ClusterBootstrap.JoinAsync(system, [], JoinTimeout), "the coordinator node did not come up");
        var cluster = new InProcessCluster(system, data);
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        var settings = new CoordinatorSettings(startWorkers ?? minWorkers, minWorkers, stepDeadline ?? TimeSpan.FromSeconds(60), RunSpecs.Of(config),
            data.Validation.Count, data.Test.Count, WatchClusterMembership: true, config.TrainEvaluationCount(data.Train.Count));
        var run = new CoordinatorRun(
            () => new TrainingSession(config, data.Train.Count, initial, events),
            recoverFromCheckpoints ? () => TrainingSession.FromNewestCheckpoint(config, data.Train.Count, initial, events) : null,
            settings, "", cluster.Completion,
            (record, s) => { lock (cluster.Steps) cluster.Steps.Add(record); onStep?.Invoke(record, s); });
        ClusterBootstrap.StartCoordinatorSingleton(system, RunSupervisor.Props(run));
        return cluster;
    }

    /// <summary>Starts a worker node: joins through the coordinator's address, registers through the proxy.</summary>
    /// <param name="slowdown">The worker's testing slowdown (1: full speed).</param>
    public Task<ActorSystem> AddWorkerAsync(double slowdown = 1) =>
        AddNodeAsync(proxy => WorkerActor.Props(proxy, new WorkerSettings("cpu", 1, _ => _data, TestingSlowdown: slowdown)));

    /// <summary>A worker beside the coordinator, in its node (as <c>node --role coordinator --local-workers 1</c>): it shares arrays with it.</summary>
    public void AddLocalWorker() =>
        Coordinator.ActorOf(WorkerActor.Props(ClusterBootstrap.CoordinatorProxy(Coordinator), new WorkerSettings("cpu", 1, _ => _data)), "local-worker");

    /// <summary>Starts a worker-role node running the actor <paramref name="worker"/> makes from the coordinator proxy.</summary>
    public async Task<ActorSystem> AddNodeAsync(Func<IActorRef, Props> worker)
    {
        var system = ClusterBootstrap.Start(ClusterBootstrap.WorkerRole, "127.0.0.1", 0);
        Assert.True(await ClusterBootstrap.JoinAsync(system, [Seed], JoinTimeout), "a worker node did not join");
        system.ActorOf(worker(ClusterBootstrap.CoordinatorProxy(system)), "worker");
        lock (_workers) _workers.Add(system);
        return system;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var system in _workers) await system.Terminate();
        await Coordinator.Terminate();
    }
}
