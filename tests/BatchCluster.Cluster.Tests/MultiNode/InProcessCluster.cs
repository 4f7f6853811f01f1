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
/// A real multi-node cluster inside the test process (<see cref="LoopbackNodes"/>: one ActorSystem
/// per node, joined over TCP), with a run of the given configuration as the coordinator singleton
/// and its step records collected. Every message crosses a real Akka.Remote connection and our
/// serializer; tensors go over the data plane.
/// </summary>
public sealed class InProcessCluster : IAsyncDisposable
{
    private readonly LoopbackNodes _nodes;
    private readonly DataSplits _data;

    public ActorSystem Coordinator => _nodes.Coordinator;
    public NodeAddress Seed => _nodes.Seed;
    public IReadOnlyList<ActorSystem> WorkerSystems => _nodes.WorkerSystems;
    public TaskCompletionSource<RunResult> Completion { get; }
    public List<StepRecord> Steps { get; }

    private InProcessCluster(LoopbackNodes nodes, DataSplits data, TaskCompletionSource<RunResult> completion, List<StepRecord> steps)
    {
        _nodes = nodes;
        _data = data;
        Completion = completion;
        Steps = steps;
    }

    /// <param name="startWorkers">Ready workers before the first step (default: <paramref name="minWorkers"/>).</param>
    /// <param name="recoverFromCheckpoints">As a coordinator node with --checkpoint-every: a failed coordinator is rebuilt from the newest checkpoint.</param>
    public static async Task<InProcessCluster> StartAsync(TrainingConfig config, DataSplits data, int minWorkers, RunEvents events,
        TimeSpan? stepDeadline = null, Action<StepRecord, TrainingSession>? onStep = null, int? startWorkers = null, bool recoverFromCheckpoints = false)
    {
        TorchRuntime.Initialise(1);
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        var completion = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var steps = new List<StepRecord>();
        var settings = new CoordinatorSettings(startWorkers ?? minWorkers, minWorkers, stepDeadline ?? TimeSpan.FromSeconds(60), RunSpecs.Of(config),
            data.Validation.Count, data.Test.Count, WatchClusterMembership: true, config.TrainEvaluationCount(data.Train.Count));
        var run = new CoordinatorRun(
            () => new TrainingSession(config, data.Train.Count, initial, events),
            recoverFromCheckpoints ? () => TrainingSession.FromNewestCheckpoint(config, data.Train.Count, initial, events) : null,
            settings, "", completion,
            (record, s) => { lock (steps) steps.Add(record); onStep?.Invoke(record, s); });
        return new InProcessCluster(await LoopbackNodes.StartAsync(RunSupervisor.Props(run)), data, completion, steps);
    }

    /// <summary>Starts a worker node: joins through the coordinator's address, registers through the proxy.</summary>
    /// <param name="slowdown">The worker's testing slowdown (1: full speed).</param>
    public Task<ActorSystem> AddWorkerAsync(double slowdown = 1) =>
        AddNodeAsync(proxy => WorkerActor.Props(proxy, new WorkerSettings("cpu", 1, _ => _data, TestingSlowdown: slowdown)));

    /// <summary>Starts a worker node that behaves as a bad member would (see <see cref="Misbehaviour"/>).</summary>
    public Task<ActorSystem> AddWorkerAsync(Misbehaviour misbehaviour) =>
        AddNodeAsync(proxy => WorkerActor.Props(proxy, new WorkerSettings("cpu", 1, _ => _data, TestingMisbehaviour: misbehaviour)));

    /// <summary>Starts a worker node whose ring member calls <paramref name="ringHook"/> at its test points (see RingMember).</summary>
    public Task<ActorSystem> AddWorkerAsync(Action<long, string> ringHook) =>
        AddNodeAsync(proxy => WorkerActor.Props(proxy, new WorkerSettings("cpu", 1, _ => _data, TestingRingHook: ringHook)));

    /// <summary>A worker beside the coordinator, in its node (as <c>node --role coordinator --local-workers 1</c>): it shares arrays with it.</summary>
    public void AddLocalWorker() =>
        Coordinator.ActorOf(WorkerActor.Props(ClusterBootstrap.CoordinatorProxy(Coordinator), new WorkerSettings("cpu", 1, _ => _data)), "local-worker");

    /// <summary>Starts a worker-role node running the actor <paramref name="worker"/> makes from the coordinator proxy.</summary>
    public Task<ActorSystem> AddNodeAsync(Func<IActorRef, Props> worker) => _nodes.AddWorkerNodeAsync(worker);

    public ValueTask DisposeAsync() => _nodes.DisposeAsync();
}
