using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Planning;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// Drives a run over a set of workers: plans each global batch into shares, collects the share
/// gradients and commits the step through the TrainingSession (which owns all maths and state).
/// It never blocks: work goes out as messages, results come back as messages.
/// </summary>
public sealed class CoordinatorActor : ReceiveActor
{
    public const string DispatcherId = "batchcluster.coordinator-dispatcher";

    private readonly TrainingSession _session;
    private readonly TrainingConfig _config;
    private readonly DataSplits _data;
    private readonly IReadOnlyList<IActorRef> _workers;
    private readonly string _runId;
    private readonly string _logPath;
    private readonly TaskCompletionSource<RunResult> _completion;
    private readonly Action<StepRecord, TrainingSession>? _onStep;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private PendingStep? _step;
    private PendingEvaluation? _evaluation;
    private int _nextRequestId;

    private sealed class PendingStep(GlobalBatch batch, IReadOnlyList<WorkShare> plan, double startedAtMs)
    {
        public GlobalBatch Batch { get; } = batch;
        public IReadOnlyList<WorkShare> Plan { get; } = plan;
        public double StartedAtMs { get; } = startedAtMs;
        public ShareGradient?[] Results { get; } = new ShareGradient?[plan.Count];
        public int Outstanding { get; set; } = plan.Count;
    }

    private sealed class PendingEvaluation(DataSplit split, int requestId, int parts, Action<EvaluationResult> then)
    {
        public DataSplit Split { get; } = split;
        public int RequestId { get; } = requestId;
        public int Outstanding { get; set; } = parts;
        public EvaluationResult Total { get; set; } = EvaluationResult.Empty;
        public Action<EvaluationResult> Then { get; } = then;
    }

    public static Props Props(TrainingSession session, TrainingConfig config, DataSplits data, IReadOnlyList<IActorRef> workers,
        string logPath, TaskCompletionSource<RunResult> completion, Action<StepRecord, TrainingSession>? onStep) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(session, config, data, workers, logPath, completion, onStep)).WithDispatcher(DispatcherId);

    public CoordinatorActor(TrainingSession session, TrainingConfig config, DataSplits data, IReadOnlyList<IActorRef> workers,
        string logPath, TaskCompletionSource<RunResult> completion, Action<StepRecord, TrainingSession>? onStep)
    {
        _session = session;
        _config = config;
        _data = data;
        _workers = workers;
        _runId = session.Events.RunId;
        _logPath = logPath;
        _completion = completion;
        _onStep = onStep;
        Receive<TrainingProtocol.ShareComputed>(OnShareComputed);
        Receive<TrainingProtocol.EvaluationDone>(OnEvaluationDone);
        Receive<Terminated>(t => Fail(new InvalidOperationException($"worker {t.ActorRef.Path.Name} stopped during the run")));
    }

    protected override void PreStart()
    {
        foreach (var worker in _workers) Context.Watch(worker);
        BeginStepOrFinish();
    }

    private TrainingProtocol.ParameterSnapshot CurrentParameters() =>
        new(_session.ParameterVersion, _session.ParametersMemory);

    private void BeginStepOrFinish()
    {
        if (_session.Finished)
        {
            Evaluate(DataSplit.Validation, validation =>
                Evaluate(DataSplit.Test, test => Finish(validation, test)));
            return;
        }
        var batch = _session.NextBatch();
        var plan = SharePlanner.PlanEven(batch.SampleIds, _workers.Count);
        _step = new PendingStep(batch, plan, _session.NowMs);
        var parameters = CurrentParameters();
        for (int i = 0; i < plan.Count; i++)
        {
            var share = plan[i];
            _workers[share.WorkerIndex].Tell(new TrainingProtocol.ComputeShare(
                _runId, batch.Step, i, share.SampleIds, _config.EffectiveMicroBatch(share.Size), parameters));
        }
    }

    private void OnShareComputed(TrainingProtocol.ShareComputed result)
    {
        var step = _step;
        if (step is null || result.RunId != _runId || result.Step != step.Batch.Step || result.ParameterVersion != _session.ParameterVersion
            || result.ShareIndex < 0 || result.ShareIndex >= step.Results.Length || step.Results[result.ShareIndex] is not null)
        {
            _log.Warning("Dropped a stale or foreign share result: run {0}, step {1}, version {2}, share {3}", result.RunId, result.Step, result.ParameterVersion, result.ShareIndex);
            return;
        }
        int expected = step.Plan[result.ShareIndex].Size;
        if (result.SampleCount != expected)
        {
            Fail(new InvalidOperationException($"step {result.Step} share {result.ShareIndex}: worker computed {result.SampleCount} samples, planned {expected}"));
            return;
        }
        step.Results[result.ShareIndex] = new ShareGradient(result.GradientSum, result.SampleCount, result.LossSum, result.GradientSumSquaredNorm, result.ComputeMilliseconds);
        if (--step.Outstanding > 0) return;

        double computeMs = step.Results.Max(r => r!.ComputeMilliseconds);
        var record = _session.Commit(step.Batch, step.Results!, computeMs, step.StartedAtMs);
        _step = null;
        _onStep?.Invoke(record, _session);
        if (_session.ValidationDue)
            Evaluate(DataSplit.Validation, result => { _session.RecordEvaluation("validation", result); BeginStepOrFinish(); });
        else
            BeginStepOrFinish();
    }

    /// <summary>Splits the set evenly over the workers and continues with the summed result.</summary>
    private void Evaluate(DataSplit split, Action<EvaluationResult> then)
    {
        int count = _data.Of(split).Count;
        int parts = Math.Max(1, Math.Min(_workers.Count, count));
        var evaluation = new PendingEvaluation(split, ++_nextRequestId, parts, then);
        _evaluation = evaluation;
        var parameters = CurrentParameters();
        int start = 0;
        for (int i = 0; i < parts; i++)
        {
            int size = count / parts + (i < count % parts ? 1 : 0);
            _workers[i].Tell(new TrainingProtocol.Evaluate(_runId, evaluation.RequestId, split, start, size, parameters));
            start += size;
        }
    }

    private void OnEvaluationDone(TrainingProtocol.EvaluationDone done)
    {
        var evaluation = _evaluation;
        if (evaluation is null || done.RunId != _runId || done.RequestId != evaluation.RequestId || done.ParameterVersion != _session.ParameterVersion)
        {
            _log.Warning("Dropped a stale or foreign evaluation result: run {0}, request {1}", done.RunId, done.RequestId);
            return;
        }
        evaluation.Total = evaluation.Total.Add(new EvaluationResult(done.LossSum, done.Correct, done.Count));
        if (--evaluation.Outstanding > 0) return;
        _evaluation = null;
        evaluation.Then(evaluation.Total);
    }

    private void Finish(EvaluationResult validation, EvaluationResult test)
    {
        var summary = _session.Complete(validation, test, _workers.Count, _logPath);
        _completion.TrySetResult(new RunResult(summary, _session.Parameters.ToArray()));
        Context.Stop(Self);
    }

    private void Fail(Exception error)
    {
        _completion.TrySetException(error);
        Context.Stop(Self);
    }
}
