using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Transport;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Planning;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;
using ClusterMembership = Akka.Cluster.ClusterEvent;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// Drives a run over whichever workers have registered: plans each global batch into shares by
/// worker capacity, collects the share gradients and commits the step through the TrainingSession
/// (which owns all maths and state). It never blocks: work goes out as messages, results come back
/// as messages.
///
/// Faults lose no sample (DESIGN promise 3): when a worker dies, leaves, becomes unreachable or
/// misses the step deadline, its unfinished shares are abandoned and their sample ids re-planned
/// onto the remaining workers within the same step. A step commits only when the non-abandoned
/// shares cover its global batch exactly once. Below the minimum worker count the run pauses and
/// resumes when workers return; a worker that joins mid-run is used from the next step.
/// </summary>
public sealed class CoordinatorActor : ReceiveActor, IWithTimers
{
    public const string DispatcherId = "batchcluster.coordinator-dispatcher";

    private readonly TrainingSession _session;
    private readonly TrainingConfig _config;
    private readonly CoordinatorSettings _settings;
    private readonly string _runId;
    private readonly string _logPath;
    private readonly TaskCompletionSource<RunResult> _completion;
    private readonly Action<StepRecord, TrainingSession>? _onStep;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TensorReassembly _reassembly = new();
    private readonly List<WorkerEntry> _workers = [];
    private readonly HashSet<string> _workersSeen = [];

    private readonly string _selfAddress = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress.ToString();
    private PendingStep? _step;
    private PendingEvaluation? _evaluation;
    private bool _started;
    private bool _paused;
    private int _nextRequestId;

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class WorkerEntry(IActorRef actor, TrainingProtocol.RegisterWorker registration)
    {
        public IActorRef Actor { get; } = actor;
        public TrainingProtocol.RegisterWorker Registration { get; } = registration;
        public string Id => Registration.WorkerId;
        public bool Ready { get; set; }
    }

    /// <summary>A share of the current step: who computes it, its result, or abandoned after a fault.</summary>
    private sealed class ShareSlot(int[] sampleIds, WorkerEntry? worker, double sentAtMs)
    {
        public int[] SampleIds { get; } = sampleIds;
        public WorkerEntry? Worker { get; set; } = worker;
        public double SentAtMs { get; } = sentAtMs;
        public ShareGradient? Result { get; set; }
        /// <summary>Coordinator-clock round trip minus the worker's handling time.</summary>
        public double TransferMs { get; set; }
        public double ArrivedAtMs { get; set; }
        public bool Abandoned { get; set; }
        public bool Outstanding => !Abandoned && Result is null;
    }

    private sealed class PendingStep(GlobalBatch batch, double startedAtMs)
    {
        public GlobalBatch Batch { get; } = batch;
        public double StartedAtMs { get; } = startedAtMs;
        public List<ShareSlot> Slots { get; } = [];
        /// <summary>Tensor payload bytes sent and received for this step (parameters, sample ids, gradients).</summary>
        public long BytesMoved { get; set; }
        /// <summary>Latest peak resident MiB reported by each worker node, keyed by node address.</summary>
        public Dictionary<string, double> PeakMemoryMbByNode { get; } = [];
    }

    private sealed class EvaluationPart(int start, int count)
    {
        public int Start { get; } = start;
        public int Count { get; } = count;
        public WorkerEntry? Worker { get; set; }
        public EvaluationResult? Result { get; set; }
    }

    private sealed class PendingEvaluation(DataSplit split, int requestId, List<EvaluationPart> parts, Action<EvaluationResult> then)
    {
        public DataSplit Split { get; } = split;
        public int RequestId { get; } = requestId;
        public List<EvaluationPart> Parts { get; } = parts;
        public Action<EvaluationResult> Then { get; } = then;
    }

    private sealed record StepDeadlinePassed(long Step);

    private sealed record EvaluationDeadlinePassed(int RequestId);

    public static Props Props(TrainingSession session, TrainingConfig config, CoordinatorSettings settings,
        string logPath, TaskCompletionSource<RunResult> completion, Action<StepRecord, TrainingSession>? onStep) =>
        Props(() => session, config, settings, logPath, completion, onStep);

    /// <param name="session">Called when the actor starts: a singleton that takes over on another
    /// node builds its session then, e.g. from the newest checkpoint.</param>
    public static Props Props(Func<TrainingSession> session, TrainingConfig config, CoordinatorSettings settings,
        string logPath, TaskCompletionSource<RunResult> completion, Action<StepRecord, TrainingSession>? onStep) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(session, config, settings, logPath, completion, onStep)).WithDispatcher(DispatcherId);

    public const string RunWatchName = "run-watch";

    public CoordinatorActor(Func<TrainingSession> session, TrainingConfig config, CoordinatorSettings settings,
        string logPath, TaskCompletionSource<RunResult> completion, Action<StepRecord, TrainingSession>? onStep)
    {
        _session = session();
        _config = config;
        _settings = settings;
        _runId = _session.Events.RunId;
        _logPath = logPath;
        _completion = completion;
        _onStep = onStep;
        Receive<TrainingProtocol.RegisterWorker>(OnRegister);
        Receive<TrainingProtocol.WorkerReady>(OnWorkerReady);
        Receive<TrainingProtocol.ShareComputed>(OnShareComputed);
        Receive<TrainingProtocol.EvaluationDone>(OnEvaluationDone);
        Receive<TensorTransferStart>(start => _reassembly.Begin(Sender.Path.ToString(), start));
        Receive<TensorChunk>(chunk =>
        {
            if (_reassembly.Add(Sender.Path.ToString(), chunk) is { } complete) Self.Tell(complete, Sender);
        });
        Receive<StepDeadlinePassed>(OnStepDeadline);
        Receive<EvaluationDeadlinePassed>(OnEvaluationDeadline);
        Receive<Terminated>(t => LoseWorkers(w => w.Actor.Equals(t.ActorRef), "stopped"));
        Receive<ClusterMembership.UnreachableMember>(m => LoseWorkers(w => w.Actor.Path.Address.Equals(m.Member.Address), "unreachable"));
        Receive<ClusterMembership.MemberRemoved>(m => LoseWorkers(w => w.Actor.Path.Address.Equals(m.Member.Address), "left the cluster"));
        Receive<ClusterMembership.IClusterDomainEvent>(_ => { });
    }

    protected override void PreStart()
    {
        if (_settings.WatchClusterMembership)
            Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterMembership.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterMembership.UnreachableMember), typeof(ClusterMembership.MemberRemoved));
    }

    protected override void PostStop()
    {
        if (_settings.WatchClusterMembership) Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
    }

    private List<WorkerEntry> ReadyWorkers(IEnumerable<WorkerEntry>? excluding = null)
    {
        var excluded = excluding?.ToHashSet() ?? [];
        return _workers.Where(w => w.Ready && !excluded.Contains(w)).ToList();
    }

    // ---- membership ----

    private void OnRegister(TrainingProtocol.RegisterWorker registration)
    {
        if (registration.ProtocolVersion != TrainingProtocol.Version)
        {
            Sender.Tell(new TrainingProtocol.WorkerRejected(
                $"protocol version {registration.ProtocolVersion} does not match the coordinator's {TrainingProtocol.Version}; run the same BatchCluster build on every node"));
            return;
        }
        if (_workers.All(w => !w.Actor.Equals(Sender)))
        {
            _workers.Add(new WorkerEntry(Sender, registration));
            Context.Watch(Sender);
        }
        Sender.Tell(new TrainingProtocol.WorkerAccepted(_runId, _settings.Spec));
    }

    private void OnWorkerReady(TrainingProtocol.WorkerReady ready)
    {
        var worker = _workers.FirstOrDefault(w => w.Actor.Equals(Sender));
        if (worker is null || worker.Ready) return;
        worker.Ready = true;
        _workersSeen.Add(worker.Id);
        var r = worker.Registration;
        _session.Events.WorkerJoined(worker.Id, r.Address, r.Device, r.Threads, ready.SamplesPerSecond, ReadyWorkers().Count);
        ContinueIfEnoughWorkers();
    }

    /// <summary>Starts the run, or resumes a paused one, once enough workers are ready.</summary>
    private void ContinueIfEnoughWorkers()
    {
        int ready = ReadyWorkers().Count;
        if (ready < _settings.MinWorkers) return;
        if (!_started)
        {
            _started = true;
            BeginStepOrFinish();
            return;
        }
        if (!_paused) return;
        _paused = false;
        _session.Events.RunResumed(_session.NextStep, ready);
        if (_step is not null) ReplanOrphans();
        else if (_evaluation is not null) AssignOrphanedParts();
        else BeginStepOrFinish();
    }

    private void LoseWorkers(Func<WorkerEntry, bool> match, string reason)
    {
        foreach (var worker in _workers.Where(match).ToList())
        {
            _workers.Remove(worker);
            Context.Unwatch(worker.Actor);
            _reassembly.Forget(worker.Actor.Path.ToString());
            _session.Events.WorkerLeft(worker.Id, reason, ReadyWorkers().Count);
            if (_step is not null)
                Replan(_step.Slots.Where(s => s.Outstanding && s.Worker == worker).ToList(), worker.Id, reason, excluding: []);
            if (_evaluation is not null)
            {
                foreach (var part in _evaluation.Parts.Where(p => p.Result is null && p.Worker == worker)) part.Worker = null;
                AssignOrphanedParts();
            }
        }
    }

    // ---- steps ----

    private TrainingProtocol.ParameterSnapshot CurrentParameters() => new(_session.ParameterVersion, _session.ParametersMemory);

    private void BeginStepOrFinish()
    {
        if (_session.Finished)
        {
            EvaluateTrainSubset(train =>
                Evaluate(DataSplit.Validation, validation =>
                    Evaluate(DataSplit.Test, test => Finish(train, validation, test))));
            return;
        }
        var workers = ReadyWorkers();
        if (workers.Count < _settings.MinWorkers)
        {
            Pause(workers.Count);
            return;
        }
        var batch = _session.NextBatch();
        _step = new PendingStep(batch, _session.NowMs);
        AddShares(batch.SampleIds, workers);
        Timers.StartSingleTimer("step-deadline", new StepDeadlinePassed(batch.Step), _settings.StepDeadline);
    }

    /// <summary>Plans <paramref name="sampleIds"/> over <paramref name="workers"/> by capacity (their torch threads) and sends the shares.</summary>
    private List<ShareSlot> AddShares(int[] sampleIds, List<WorkerEntry> workers)
    {
        var step = _step!;
        var plan = SharePlanner.Plan(sampleIds, workers.Select(w => (double)Math.Max(1, w.Registration.Threads)).ToArray());
        var parameters = CurrentParameters();
        var added = new List<ShareSlot>();
        foreach (var share in plan)
        {
            var slot = new ShareSlot(share.SampleIds, workers[share.WorkerIndex], _session.NowMs);
            step.Slots.Add(slot);
            added.Add(slot);
            step.BytesMoved += sizeof(float) * (long)parameters.Values.Length + sizeof(int) * (long)share.SampleIds.Length;
            TensorTransport.Tell(slot.Worker!.Actor, new TrainingProtocol.ComputeShare(
                _runId, step.Batch.Step, step.Slots.Count - 1, share.SampleIds, _config.EffectiveMicroBatch(share.Size), parameters), Self);
        }
        return added;
    }

    /// <summary>Abandons <paramref name="slots"/> and plans their samples onto the other ready workers, within this step.</summary>
    private void Replan(List<ShareSlot> slots, string lostWorker, string reason, List<WorkerEntry> excluding)
    {
        if (slots.Count == 0) return;
        var targets = ReadyWorkers(excluding);
        foreach (var slot in slots)
        {
            slot.Abandoned = true;
        }
        int[] moved = slots.SelectMany(s => s.SampleIds).ToArray();
        if (targets.Count == 0)
        {
            // Nobody left to take them: keep them as one orphan share until workers return.
            _step!.Slots.Add(new ShareSlot(moved, worker: null, _session.NowMs));
            _session.Events.StepReplanned(_step.Batch.Step, lostWorker, reason, moved, []);
            Pause(0);
            return;
        }
        var added = AddShares(moved, targets);
        _session.Events.StepReplanned(_step!.Batch.Step, lostWorker, reason, moved, added.Select(s => s.Worker!.Id).Distinct().ToArray());
    }

    private void ReplanOrphans()
    {
        var orphans = _step!.Slots.Where(s => s.Outstanding && s.Worker is null).ToList();
        Replan(orphans, "nobody", "waiting for workers", excluding: []);
    }

    private void Pause(int ready)
    {
        if (_paused) return;
        _paused = true;
        _session.Events.RunPaused(_session.NextStep, ready, _settings.MinWorkers);
    }

    private void OnStepDeadline(StepDeadlinePassed deadline)
    {
        var step = _step;
        if (step is null || step.Batch.Step != deadline.Step) return;
        var late = step.Slots.Where(s => s.Outstanding && s.Worker is not null).ToList();
        var lateWorkers = late.Select(s => s.Worker!).Distinct().ToList();
        _session.Events.StallReport(step.Batch.Step, lateWorkers.Select(w => w.Id).ToArray(), _settings.StepDeadline.TotalSeconds);
        // Late workers stay registered (they may only be slow) but their shares go to the others;
        // when every ready worker is late there is nobody better to ask, so keep waiting.
        if (ReadyWorkers(lateWorkers).Count > 0)
        {
            foreach (var worker in lateWorkers)
                Replan(late.Where(s => s.Worker == worker).ToList(), worker.Id, "missed the step deadline", excluding: lateWorkers);
        }
        Timers.StartSingleTimer("step-deadline", new StepDeadlinePassed(step.Batch.Step), _settings.StepDeadline);
    }

    private void OnShareComputed(TrainingProtocol.ShareComputed result)
    {
        var step = _step;
        string? problem =
            result.RunId != _runId ? $"foreign run {result.RunId}" :
            step is null || result.Step != step.Batch.Step ? $"stale step {result.Step}" :
            result.ParameterVersion != _session.ParameterVersion ? $"stale parameter version {result.ParameterVersion}" :
            result.ShareIndex < 0 || result.ShareIndex >= step.Slots.Count ? $"unknown share {result.ShareIndex}" :
            step.Slots[result.ShareIndex].Abandoned ? "the share was re-planned after a fault" :
            step.Slots[result.ShareIndex].Result is not null ? "the share already has a result" :
            !Sender.Equals(step.Slots[result.ShareIndex].Worker?.Actor) ? "sent by a worker the share was not given to" :
            null;
        if (problem is not null)
        {
            _session.Events.ResultDropped(result.Step, result.ShareIndex, Sender.Path.ToString(), problem);
            return;
        }
        var slot = step!.Slots[result.ShareIndex];
        if (result.SampleCount != slot.SampleIds.Length || result.GradientSum.Length != _session.Parameters.Length)
        {
            Fail(new InvalidOperationException(
                $"step {result.Step} share {result.ShareIndex}: worker computed {result.SampleCount} samples and {result.GradientSum.Length} gradient values, planned {slot.SampleIds.Length} samples of {_session.Parameters.Length} values"));
            return;
        }
        slot.Result = new ShareGradient(result.GradientSum, result.SampleCount, result.LossSum, result.GradientSumSquaredNorm, result.ComputeMilliseconds);
        slot.ArrivedAtMs = _session.NowMs;
        slot.TransferMs = Math.Max(0, slot.ArrivedAtMs - slot.SentAtMs - result.HandlingMilliseconds);
        step.BytesMoved += sizeof(float) * (long)result.GradientSum.Length;
        step.PeakMemoryMbByNode[slot.Worker!.Registration.Address] = result.PeakMemoryBytes / (1024.0 * 1024.0);
        if (step.Slots.Any(s => s.Outstanding)) return;
        Commit(step);
    }

    private void Commit(PendingStep step)
    {
        Timers.Cancel("step-deadline");
        var done = step.Slots.Where(s => !s.Abandoned).ToList();
        if (!CoversBatchExactly(step.Batch, done))
        {
            Fail(new InvalidOperationException($"step {step.Batch.Step}: the shares do not cover the global batch exactly once"));
            return;
        }
        // The step waited for the share that arrived last: its compute and transfer are the critical path.
        var critical = done.MaxBy(s => s.ArrivedAtMs)!;
        // The coordinator's own node too (in one process it is the workers' node as well).
        step.PeakMemoryMbByNode[_selfAddress] = PeakMemory.Megabytes;
        var measured = new StepMeasurements(critical.Result!.ComputeMilliseconds, critical.TransferMs, step.BytesMoved, step.PeakMemoryMbByNode);
        var record = _session.Commit(step.Batch, done.Select(s => s.Result!).ToList(), measured, step.StartedAtMs);
        _step = null;
        _onStep?.Invoke(record, _session);
        if (_session.ValidationDue)
            EvaluateTrainSubset(_ =>
                Evaluate(DataSplit.Validation, result => { _session.RecordEvaluation(DataSplit.Validation, result); BeginStepOrFinish(); }));
        else
            BeginStepOrFinish();
    }

    /// <summary>DESIGN promise 3, checked at every commit: every sample id of the batch contributed exactly once.</summary>
    private static bool CoversBatchExactly(GlobalBatch batch, List<ShareSlot> done)
    {
        var counted = done.SelectMany(s => s.SampleIds).ToList();
        return counted.Count == batch.Size && counted.Order().SequenceEqual(batch.SampleIds.Order());
    }

    // ---- evaluation ----

    /// <summary>
    /// Evaluates the fixed training subset (for the generalization gap) and logs it, then continues;
    /// at the end of the run the result goes to the summary instead. Skipped when the subset is off.
    /// </summary>
    private void EvaluateTrainSubset(Action<EvaluationResult?> then)
    {
        if (_settings.TrainEvaluationCount <= 0)
        {
            then(null);
            return;
        }
        Evaluate(DataSplit.Train, result =>
        {
            if (!_session.Finished) _session.RecordEvaluation(DataSplit.Train, result);
            then(result);
        });
    }

    /// <summary>Splits the set evenly over the ready workers and continues with the summed result.</summary>
    private void Evaluate(DataSplit split, Action<EvaluationResult> then)
    {
        int count = split switch
        {
            DataSplit.Validation => _settings.ValidationCount,
            DataSplit.Test => _settings.TestCount,
            _ => _settings.TrainEvaluationCount,
        };
        int parts = Math.Max(1, Math.Min(Math.Max(1, ReadyWorkers().Count), count));
        var list = new List<EvaluationPart>();
        int start = 0;
        for (int i = 0; i < parts; i++)
        {
            int size = count / parts + (i < count % parts ? 1 : 0);
            list.Add(new EvaluationPart(start, size));
            start += size;
        }
        _evaluation = new PendingEvaluation(split, ++_nextRequestId, list, then);
        AssignOrphanedParts();
        Timers.StartSingleTimer("evaluation-deadline", new EvaluationDeadlinePassed(_evaluation.RequestId), _settings.StepDeadline);
    }

    /// <summary>Evaluation parts have the step deadline too: a stalled worker must not hang the run at an evaluation.</summary>
    private void OnEvaluationDeadline(EvaluationDeadlinePassed deadline)
    {
        var evaluation = _evaluation;
        if (evaluation is null || evaluation.RequestId != deadline.RequestId) return;
        var late = evaluation.Parts.Where(p => p.Result is null && p.Worker is not null).ToList();
        var lateWorkers = late.Select(p => p.Worker!).Distinct().ToList();
        _session.Events.StallReport(_session.NextStep, lateWorkers.Select(w => w.Id).ToArray(), _settings.StepDeadline.TotalSeconds);
        if (ReadyWorkers(lateWorkers).Count > 0)
        {
            foreach (var part in late) part.Worker = null;
            AssignOrphanedParts(excluding: lateWorkers);
        }
        Timers.StartSingleTimer("evaluation-deadline", deadline, _settings.StepDeadline);
    }

    private void AssignOrphanedParts(List<WorkerEntry>? excluding = null)
    {
        var evaluation = _evaluation!;
        var workers = ReadyWorkers(excluding);
        if (workers.Count == 0)
        {
            Pause(0);
            return;
        }
        var parameters = CurrentParameters();
        int next = 0;
        for (int i = 0; i < evaluation.Parts.Count; i++)
        {
            var part = evaluation.Parts[i];
            if (part.Result is not null || part.Worker is not null) continue;
            part.Worker = workers[next++ % workers.Count];
            TensorTransport.Tell(part.Worker.Actor,
                new TrainingProtocol.Evaluate(_runId, evaluation.RequestId, i, evaluation.Split, part.Start, part.Count, parameters), Self);
        }
    }

    private void OnEvaluationDone(TrainingProtocol.EvaluationDone done)
    {
        var evaluation = _evaluation;
        if (evaluation is null || done.RunId != _runId || done.RequestId != evaluation.RequestId || done.ParameterVersion != _session.ParameterVersion
            || done.Part < 0 || done.Part >= evaluation.Parts.Count || evaluation.Parts[done.Part].Result is not null)
        {
            _session.Events.ResultDropped(_session.NextStep, done.Part, Sender.Path.ToString(), $"stale or foreign evaluation result (request {done.RequestId})");
            return;
        }
        evaluation.Parts[done.Part].Result = new EvaluationResult(done.LossSum, done.Correct, done.Count);
        if (evaluation.Parts.Any(p => p.Result is null)) return;
        _evaluation = null;
        Timers.Cancel("evaluation-deadline");
        var total = evaluation.Parts.Aggregate(EvaluationResult.Empty, (sum, p) => sum.Add(p.Result!.Value));
        evaluation.Then(total);
    }

    // ---- the end ----

    private void Finish(EvaluationResult? train, EvaluationResult validation, EvaluationResult test)
    {
        var summary = _session.Complete(train, validation, test, _workersSeen.Count, _logPath);
        foreach (var worker in _workers) worker.Actor.Tell(new TrainingProtocol.RunEnded(_runId, Succeeded: true));
        TellStandbyCoordinators(new TrainingProtocol.RunEnded(_runId, Succeeded: true));
        _completion.TrySetResult(new RunResult(summary, _session.Parameters.ToArray()));
        Context.Stop(Self);
    }

    /// <summary>Other coordinator-role nodes wait to take over; tell them the run is over.</summary>
    private void TellStandbyCoordinators(TrainingProtocol.RunEnded ended)
    {
        if (!_settings.WatchClusterMembership) return;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        foreach (var member in cluster.State.Members.Where(m => m.HasRole(Nodes.ClusterBootstrap.CoordinatorRole) && !m.Address.Equals(cluster.SelfAddress)))
            Context.ActorSelection($"{member.Address}/user/{RunWatchName}").Tell(ended);
    }

    private void Fail(Exception error)
    {
        foreach (var worker in _workers) worker.Actor.Tell(new TrainingProtocol.RunEnded(_runId, Succeeded: false));
        _completion.TrySetException(error);
        Context.Stop(Self);
    }
}
