using System.Diagnostics;
using BatchCluster.Core.BatchSizing;
using BatchCluster.Core.Checkpoints;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Schedules;

namespace BatchCluster.Core.Training;

/// <summary>
/// The single writer of a run's state (promise 5, docs/architecture.md): parameters, optimizer, sampler position,
/// LR schedule. An engine asks it for the next global batch, hands back the share gradients, and it
/// averages exactly, clips, updates and logs. Both the plain loop and the coordinator actor drive
/// this same object, so they cannot drift apart.
/// </summary>
public sealed class TrainingSession
{
    private const int TrainLossWindow = 50;

    private readonly TrainingConfig _config;
    private readonly RunEvents _events;
    private readonly EpochSampler _sampler;
    private readonly LearningRateSchedule _schedule;
    private readonly IOptimizer _optimizer;
    private readonly float[] _parameters;
    private readonly float[] _meanGradient;
    private readonly Queue<double> _recentLosses = new();
    private readonly GradientNoiseScale _noiseScale = new();
    /// <summary>Under --bn-batch the batch-norm running statistics, updated at every applied step from the shares' sums (Models.RunningStatistics); null otherwise.</summary>
    private readonly float[]? _runningStatistics;
    /// <summary>Scratch for a step's summed ghost-batch statistics (no allocation per step).</summary>
    private readonly double[] _batchNormSums;
    /// <summary>The batch of every step and the learning-rate gain (fixed, scheduled or adaptive: docs/adaptive-batch.md).</summary>
    private readonly BatchSizer _sizing;
    /// <summary>Where the next step's samples start: the epoch and the sample offset in its order (the sampler holds no other state).</summary>
    private int _epoch, _offset;
    /// <summary>The step that began a new epoch by its position (a run whose batch varies validates then, by default).</summary>
    private long _epochBeganAtStep;
    private (long Step, EvaluationResult Result)? _lastTrainEvaluation;
    private readonly long _evalEvery;
    private double _trainingMilliseconds;
    private long _trainedSamples;
    private readonly Stopwatch _wall = Stopwatch.StartNew();

    private readonly CheckpointStore? _checkpoints;
    /// <summary>Non-finite steps since the last applied one (<see cref="TrainingConfig.MaxBadSteps"/>).</summary>
    private int _badStepsInARow;
    /// <summary>The step a checkpoint on disk resumes at (written or resumed from), so an interrupt does not write it twice.</summary>
    private long _checkpointedStep = -1;

    /// <param name="resumeFrom">A checkpoint of this configuration to continue from (its parameters replace <paramref name="initialParameters"/>).</param>
    public TrainingSession(TrainingConfig config, int trainSamples, float[] initialParameters, RunEvents events, CheckpointState? resumeFrom = null)
    {
        _config = config;
        _events = events;
        _sampler = new EpochSampler(trainSamples, config.GlobalBatch, config.Seed, config.Shuffle);
        _schedule = config.Schedule;
        _parameters = (float[])initialParameters.Clone();
        _sizing = new BatchSizer(config, trainSamples, _parameters.Length,
            config.NeedsNoiseEstimate && config.EffectiveNoiseWindow > 0 ? TensorSizes(config.Model, _parameters.Length) : null);
        _meanGradient = new float[_parameters.Length];
        _optimizer = config.Optimizer.Create(_parameters.Length);
        _runningStatistics = config.BnBatch is null ? null : Models.RunningStatistics.Initial(config.Model);
        _batchNormSums = new double[_runningStatistics?.Length ?? 0];
        TotalSteps = config.TotalSteps(_sampler.StepsPerEpoch);
        _evalEvery = config.EvalEvery ?? _sampler.StepsPerEpoch;
        Fingerprint = ConfigFingerprint.Of(config);
        _checkpoints = config.CheckpointEvery > 0 ? CheckpointStore.Of(config) : null;
        if (resumeFrom is not null) Restore(resumeFrom);
    }

    /// <summary>
    /// A session continuing from the newest intact checkpoint of <paramref name="config"/>'s
    /// configuration, logged as ResumedFromCheckpoint (a standby coordinator taking over, or a
    /// coordinator rebuilt after a failure). Throws InvalidDataException when there is none.
    /// </summary>
    public static TrainingSession FromNewestCheckpoint(TrainingConfig config, int trainSamples, float[] initialParameters, RunEvents events)
    {
        var state = CheckpointStore.Of(config).LoadNewest(out string path, out var skipped);
        events.ResumedFromCheckpoint(state.NextStep, state.Epoch, state.IndexInEpoch, path, skipped);
        return new TrainingSession(config, trainSamples, initialParameters, events, state);
    }

    public string Fingerprint { get; }
    public TrainingConfig Config => _config;

    /// <summary>The model's tensor sizes in the flat order, for the noise window's sampling; one tensor where the parameters are not the model's (tests).</summary>
    private static IReadOnlyList<int> TensorSizes(Models.ModelSpec model, int parameterCount)
    {
        var layout = Models.ModelFactory.LayoutOf(model);
        return layout.TotalCount == parameterCount ? layout.Sizes : [parameterCount];
    }

    private void Restore(CheckpointState state)
    {
        if (state.ConfigFingerprint != Fingerprint)
            throw new InvalidDataException($"checkpoint fingerprint {state.ConfigFingerprint} does not match this run's {Fingerprint}");
        if (state.Parameters.Length != _parameters.Length)
            throw new InvalidDataException($"checkpoint holds {state.Parameters.Length} parameters, the model has {_parameters.Length}");
        state.Parameters.CopyTo(_parameters, 0);
        _optimizer.Import(state.Optimizer);
        NextStep = state.NextStep;
        _epoch = state.Epoch;
        if (state.Sizing is { } sizing)
        {
            _sizing.Restore(sizing);
            _offset = sizing.Offset;
        }
        else if (_sizing.Tracks)
            throw new InvalidDataException("the checkpoint holds no batch sizing, but this run's batch varies or uses AdaScale");
        else _offset = state.IndexInEpoch * _config.GlobalBatch;
        if (_runningStatistics is not null)
        {
            if (state.RunningStatistics?.Length != _runningStatistics.Length)
                throw new InvalidDataException("the checkpoint holds no batch-norm running statistics of this model, but this run has --bn-batch");
            state.RunningStatistics.CopyTo(_runningStatistics, 0);
        }
        _checkpointedStep = state.NextStep;
    }

    /// <summary>The whole state needed to continue this run from <see cref="NextStep"/>.</summary>
    public CheckpointState Capture() => new(
        Fingerprint, NextStep, _epoch, _offset / _sizing.Batch, (float[])_parameters.Clone(), _optimizer.Export(),
        _sizing.Tracks ? _sizing.Capture(_offset) : null, (float[]?)_runningStatistics?.Clone());

    public long TotalSteps { get; }
    public int StepsPerEpoch => _sampler.StepsPerEpoch;
    /// <summary>The next step to run; equals the number of committed updates (the parameter version).</summary>
    public long NextStep { get; private set; }
    public long ParameterVersion => NextStep;
    /// <summary>The last step (0-based) whose update is in the parameters; −1 before the first commit.</summary>
    public long LastCommittedStep => NextStep - 1;
    /// <summary>The run length is reached, or a validation reached <see cref="TrainingConfig.TargetAccuracy"/>.</summary>
    public bool Finished => TargetReached || (StepCountKnown ? NextStep >= TotalSteps : EpochsDone >= (_config.Epochs ?? 1.0) - 1e-9);
    public bool TargetReached { get; private set; }
    /// <summary>The live parameters, for reading now; copy them to hand them on (they change at every commit).</summary>
    public ReadOnlySpan<float> Parameters => _parameters;

    /// <summary>Under --bn-batch the batch-norm running statistics evaluation uses (Models.RunningStatistics); empty otherwise.</summary>
    public ReadOnlySpan<float> RunningStatistics => _runningStatistics;
    /// <summary>Epochs done: steps over steps per epoch, or where the batch varies, the sample position over the data set.</summary>
    public double EpochsDone => _sizing.Varies ? _epoch + (double)_offset / _sampler.DatasetSize : (double)NextStep / _sampler.StepsPerEpoch;
    /// <summary>Whether <see cref="TotalSteps"/> is the run's length; not where the batch varies and the length is in epochs (it is then the count at the first batch).</summary>
    public bool StepCountKnown => !(_sizing.Varies && _config.Steps is null);
    /// <summary>The fraction of the run done (by steps, or by epochs where the step count is not known).</summary>
    public double Progress => Math.Min(1, StepCountKnown ? (double)NextStep / TotalSteps : EpochsDone / (_config.Epochs ?? 1.0));
    public RunEvents Events => _events;

    /// <summary>The next step's samples: as many as its batch (fixed, scheduled or chosen) from the run's position (the same answer until it commits).</summary>
    public GlobalBatch NextBatch()
    {
        int size = _sizing.Batch;
        bool fits = _offset + size <= _sampler.DatasetSize;
        return _sampler.Take(NextStep, fits ? _epoch : _epoch + 1, fits ? _offset : 0, size);
    }

    /// <summary>
    /// After step <paramref name="batch"/> was applied or skipped: the next step's batch is decided (logged when it changes), and
    /// the position moves past the batch's samples — into the next epoch when that batch no longer fits in this one's rest.
    /// </summary>
    private void MovePast(GlobalBatch batch)
    {
        NextStep++;
        bool last = _config.Steps is long steps && NextStep >= steps; // no decision for a step that will not run
        if (!last && _sizing.Next(NextStep) is { } decision)
            _events.BatchSizeDecided(NextStep, decision, _sizing.StatisticalEfficiency(decision.Current), _sizing.StatisticalEfficiency(decision.Chosen),
                _sizing.GainAt(decision.Chosen), _sizing.Throughput.Layout);
        _epoch = batch.Epoch;
        _offset = batch.Offset + batch.Size;
        if (_offset + _sizing.Batch > _sampler.DatasetSize)
        {
            _epoch++;
            _offset = 0;
            _epochBeganAtStep = NextStep;
        }
    }

    /// <summary>The learning rate of <paramref name="batch"/>'s step and the AdaScale gain in it (1 without AdaScale).</summary>
    private double LearningRateFor(GlobalBatch batch, out double gain)
    {
        gain = _sizing.GainAt(batch.Size);
        return _schedule.At(_sizing.ScheduleProgress(batch.Step), batch.Size) * gain;
    }

    /// <summary>The gradient sums <see cref="Fold"/> has added for the step <see cref="_foldedStep"/>, in plan order.</summary>
    private readonly List<ReadOnlyMemory<float>> _folded = [];
    private long _foldedStep = -1;
    /// <summary>Milliseconds <see cref="Fold"/> took for the step <see cref="_foldedStep"/> (reported apart from the update).</summary>
    private double _foldMs;

    /// <summary>
    /// Adds the next share of <paramref name="batch"/>'s plan order to the step's running sum as it
    /// arrives, so the commit after the last result only adds that one: an engine calls it for the
    /// leading shares whose results are in (WorkRound.NextInPlanOrder). Nothing else changes: the
    /// commit checks that its shares begin with exactly these (the same buffers) and sums from
    /// scratch otherwise, and the bits are those of summing at the commit. The buffers must stay
    /// unchanged until the commit.
    /// </summary>
    /// <param name="index">The share's place among the shares folded for this round: 0 starts a new sum (a new round of the
    /// same step forgets the old one), every next call must give the next place.</param>
    public void Fold(GlobalBatch batch, ReadOnlyMemory<float> gradientSum, int index)
    {
        CheckNext(batch);
        long started = Stopwatch.GetTimestamp();
        if (index == 0 || _foldedStep != batch.Step)
        {
            _folded.Clear();
            _foldedStep = batch.Step;
            _foldMs = 0;
        }
        if (index != _folded.Count)
            throw new InvalidOperationException($"step {batch.Step}: share {index} folded after {_folded.Count} (folds come in plan order, from 0)");
        ExactAverage.SumInto(_meanGradient, gradientSum.Span, _folded.Count);
        _folded.Add(gradientSum);
        _foldMs += Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    /// <summary>How many leading shares the running sum holds for this commit (0: sum from scratch).</summary>
    private int FoldedPrefix(GlobalBatch batch, IReadOnlyList<ShareGradient> sharesInPlanOrder, out double foldMs)
    {
        int folded = _foldedStep == batch.Step ? _folded.Count : 0;
        foldMs = folded > 0 ? _foldMs : 0;
        _foldedStep = -1;
        if (folded > sharesInPlanOrder.Count) return 0;
        for (int i = 0; i < folded; i++)
            if (!_folded[i].Equals(sharesInPlanOrder[i].GradientSum)) return 0; // another plan order than the one folded: start again
        return folded;
    }

    /// <summary>
    /// Commits one step: g = Σ grad_sum / Σ n over the shares (in plan order), optional clipping,
    /// one optimizer update at this step's learning rate. The shares must cover the batch exactly.
    /// A step whose loss or mean gradient is not finite is not applied (see <see cref="SkipNonFinite"/>).
    /// <para>Two passes over memory, the fewest the maths allows: the average with its squared norm
    /// (<see cref="ExactAverage"/>), then — once the norm has decided skip or clip — the optimizer,
    /// which reads the clipping factor with the gradient and checks the new parameters as it writes
    /// them. A finite mean proves every share finite (a NaN or infinity in any share makes its
    /// element of the sum non-finite), so shares are read one by one only to name the culprits of a
    /// skipped step. Shares added by <see cref="Fold"/> as they arrived are not summed again: the
    /// update's time is then the time after the last result.</para>
    /// </summary>
    /// <returns>The step's record, or null when the step was skipped as non-finite.</returns>
    /// <exception cref="RunFailedException">
    /// The <see cref="TrainingConfig.MaxBadSteps"/>-th non-finite step in a row, or an update that made a
    /// parameter non-finite: the run cannot go on; no checkpoint of this state is written.
    /// </exception>
    public StepRecord? Commit(GlobalBatch batch, IReadOnlyList<ShareGradient> sharesInPlanOrder, StepMeasurements measured, double stepStartedAtMs) =>
        Commit(batch, sharesInPlanOrder, measured, stepStartedAtMs, rejectNonFinite: null, out _);

    /// <summary>
    /// <see cref="Commit(GlobalBatch, IReadOnlyList{ShareGradient}, StepMeasurements, double)"/> for an engine that can
    /// have shares computed again (the coordinator). When the step is not finite, the places (plan order) of its
    /// non-finite shares go to <paramref name="rejectNonFinite"/>; if it takes them, the step is not decided: nothing
    /// is applied, counted or consumed, <paramref name="rejectedShares"/> holds those places, and the engine has their
    /// samples computed by other workers and commits the step again. Otherwise the step is skipped as always.
    /// </summary>
    /// <param name="rejectNonFinite">Given the non-finite shares' places: whether the engine takes them back (a worker's
    /// fault, as it judges) rather than skip the step (the model's). Null: never.</param>
    /// <param name="rejectedShares">The places of the non-finite shares when the step was not decided; empty otherwise.</param>
    public StepRecord? Commit(GlobalBatch batch, IReadOnlyList<ShareGradient> sharesInPlanOrder, StepMeasurements measured, double stepStartedAtMs,
        Func<int[], bool>? rejectNonFinite, out int[] rejectedShares)
    {
        rejectedShares = [];
        CheckNext(batch);
        using var span = StepTrace.Time(StepPhase.Commit, batch.Step);
        long started = Stopwatch.GetTimestamp();
        // A run with a noise window adds the mean to it in the same pass (one pass less); a step that is not applied discards the window.
        int samples = ExactAverage.Compute(sharesInPlanOrder, _meanGradient, out double meanSquaredNorm, FoldedPrefix(batch, sharesInPlanOrder, out double foldMs),
            _sizing.Persistent);
        if (samples != batch.Size)
            throw new InvalidOperationException($"step {batch.Step}: shares hold {samples} samples but the global batch has {batch.Size}");
        double lossSum = 0;
        foreach (var share in sharesInPlanOrder) lossSum += share.LossSum;
        double loss = lossSum / samples;
        double gradNorm = Math.Sqrt(meanSquaredNorm);
        bool finite = double.IsFinite(gradNorm) && double.IsFinite(loss);
        var tallies = new ShareTally[sharesInPlanOrder.Count];
        for (int i = 0; i < tallies.Length; i++) tallies[i] = sharesInPlanOrder[i].Tally(finite || sharesInPlanOrder[i].IsFinite);
        if (!finite)
        {
            _sizing.Persistent?.DiscardWindow(); // it holds this step's non-finite mean
            var nonFinite = Enumerable.Range(0, tallies.Length).Where(i => !tallies[i].Finite).ToArray();
            if (nonFinite.Length > 0 && rejectNonFinite?.Invoke(nonFinite) == true)
            {
                rejectedShares = nonFinite;
                return null;
            }
            SkipNonFinite(batch, tallies, loss, gradNorm);
            return null;
        }
        _badStepsInARow = 0;
        double lr = LearningRateFor(batch, out double gain);
        var scale = GradientScale.Clipped(GradientClipping.Factor(gradNorm, _config.ClipGradNorm));
        bool parametersFinite = _optimizer.UpdateRange(0, _parameters, _meanGradient, (float)lr, scale);
        _optimizer.CompleteStep();
        double updateMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (!parametersFinite) throw NonFiniteUpdate(batch.Step, lr, gradNorm);
        UpdateRunningStatistics(batch, sharesInPlanOrder);
        return Record(batch, tallies, samples, loss, lr, gain, gradNorm, measured, updateMs, stepStartedAtMs, foldMs);
    }

    /// <summary>
    /// Under --bn-batch, the running statistics take one step of the average over the global batch's ghost batches; the sums
    /// of the shares' sums do not depend on how the batch was cut (only the float rounding of their order).
    /// </summary>
    private void UpdateRunningStatistics(GlobalBatch batch, IReadOnlyList<ShareGradient> shares)
    {
        if (_runningStatistics is null) return;
        Array.Clear(_batchNormSums);
        foreach (var share in shares)
        {
            var sums = share.BatchNormSums ?? [];
            if (sums.Length != _batchNormSums.Length)
                throw new InvalidOperationException($"step {batch.Step}: a share carries {sums.Length} batch-norm sums, the model has {_batchNormSums.Length}");
            for (int i = 0; i < sums.Length; i++) _batchNormSums[i] += sums[i];
        }
        Models.RunningStatistics.Update(_runningStatistics, _batchNormSums, batch.Size / _config.BnBatch!.Value);
    }

    /// <summary>
    /// Starts the commit of a step whose gradient sums were reduced outside the coordinator (a
    /// ring, docs/architecture.md): the shares' tallies and the squared L2 norm of the batch's
    /// gradient SUM (the members' shard norms, sent ahead of their shards) decide the step before
    /// any value arrives: skipped when the loss or the norm is not finite, clipped by the whole
    /// batch's norm. The update then comes shard by shard through <see cref="ShardedCommit.Apply"/>,
    /// in place on the live parameters, and can be undone until <see cref="ShardedCommit.Complete"/>.
    /// </summary>
    /// <returns>The commit to apply, or null when the step was skipped as non-finite (logged, counted, its batch consumed).</returns>
    /// <exception cref="RunFailedException">The <see cref="TrainingConfig.MaxBadSteps"/>-th non-finite step in a row.</exception>
    public ShardedCommit? BeginShardedCommit(GlobalBatch batch, IReadOnlyList<ShareTally> sharesInPlanOrder, double gradientSumSquaredNorm)
    {
        CheckNext(batch);
        int samples = 0;
        foreach (var share in sharesInPlanOrder) samples += share.SampleCount;
        if (samples != batch.Size)
            throw new InvalidOperationException($"step {batch.Step}: shares hold {samples} samples but the global batch has {batch.Size}");
        double loss = LossOf(sharesInPlanOrder, samples);
        double gradNorm = Math.Sqrt(gradientSumSquaredNorm) / samples;
        if (!double.IsFinite(gradNorm) || !double.IsFinite(loss))
        {
            SkipNonFinite(batch, sharesInPlanOrder, loss, gradNorm);
            return null;
        }
        _badStepsInARow = 0;
        float clip = GradientClipping.Factor(gradNorm, _config.ClipGradNorm);
        double lr = LearningRateFor(batch, out double gain);
        return new ShardedCommit(this, batch, sharesInPlanOrder, samples, loss, gradNorm, clip, lr, gain);
    }

    /// <summary>
    /// One step's update applied shard by shard (see <see cref="BeginShardedCommit"/>). Each shard
    /// of gradient sums becomes the mean (divided by the batch, the same division as
    /// <see cref="ExactAverage"/>), is clipped, and goes through the optimizer over its range: the
    /// same operations as a whole commit, element by element, so shards cut anywhere give the same
    /// bits as one range. Until <see cref="Complete"/>, <see cref="RollBack"/> restores every range
    /// applied (parameters and optimizer state), so a reduction that breaks midway leaves the run
    /// exactly at its last commit. Ranges must cover the model exactly once.
    /// </summary>
    public sealed class ShardedCommit
    {
        private readonly TrainingSession _session;
        private readonly GlobalBatch _batch;
        private readonly IReadOnlyList<ShareTally> _shares;
        private readonly int _samples;
        private readonly double _loss;
        private readonly float _clip;
        private readonly double _gain;
        private readonly List<ModelRangeApplied> _applied = new(16);
        private double _updateMs;
        private bool _over;

        private readonly record struct ModelRangeApplied(int Offset, int Length);

        internal ShardedCommit(TrainingSession session, GlobalBatch batch, IReadOnlyList<ShareTally> shares, int samples, double loss,
            double gradNorm, float clip, double learningRate, double gain)
        {
            _gain = gain;
            _session = session;
            _batch = batch;
            _shares = shares;
            _samples = samples;
            _loss = loss;
            GradNorm = gradNorm;
            _clip = clip;
            LearningRate = learningRate;
        }

        /// <summary>The L2 norm of the batch's mean gradient, before clipping.</summary>
        public double GradNorm { get; }
        public double LearningRate { get; }
        public long Step => _batch.Step;
        /// <summary>Values applied so far; the commit can complete when it equals the model's size.</summary>
        public long AppliedValues { get; private set; }

        /// <summary>
        /// Applies the update to [<paramref name="offset"/>, offset + length) from that range's
        /// gradient sums (read only: the optimizer divides and clips them as it reads them).
        /// </summary>
        /// <returns>The updated parameters of the range (the live parameters: read them before the next commit).</returns>
        /// <exception cref="RunFailedException">The update made a parameter of the range non-finite.</exception>
        public ReadOnlySpan<float> Apply(int offset, ReadOnlySpan<float> gradientSums)
        {
            if (_over) throw new InvalidOperationException($"step {Step}: the commit is over");
            int length = gradientSums.Length;
            if (offset < 0 || length <= 0 || offset + length > _session._parameters.Length)
                throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + length}) is not a range of a model of {_session._parameters.Length} values");
            foreach (var done in _applied)
                if (offset < done.Offset + done.Length && done.Offset < offset + length)
                    throw new InvalidOperationException($"step {Step}: [{offset}, {offset + length}) overlaps a range applied already");
            long started = Stopwatch.GetTimestamp(); // no Stopwatch object: this runs for every chunk of a ring
            var parameters = _session._parameters.AsSpan(offset, length);
            _session.BackUp(offset, length);
            _applied.Add(new ModelRangeApplied(offset, length));
            AppliedValues += length;
            bool finite = _session._optimizer.UpdateRange(offset, parameters, gradientSums, (float)LearningRate, new GradientScale(_samples, _clip));
            _session._sizing.Persistent?.Add(offset, gradientSums, 1f / _samples);
            _updateMs += Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (!finite) throw _session.NonFiniteUpdate(Step, LearningRate, GradNorm);
            return parameters;
        }

        /// <summary>Undoes every range applied: parameters and optimizer state are those of the last commit again.</summary>
        public void RollBack()
        {
            if (_over) return;
            _over = true;
            foreach (var range in _applied) _session.Restore(range.Offset, range.Length);
        }

        /// <summary>Every range is applied: the step counts (noise scale, the record, a checkpoint if due).</summary>
        public StepRecord Complete(StepMeasurements measured, double stepStartedAtMs)
        {
            if (_over) throw new InvalidOperationException($"step {Step}: the commit is over");
            if (AppliedValues != _session._parameters.Length)
                throw new InvalidOperationException($"step {Step}: {AppliedValues} of {_session._parameters.Length} values were updated");
            _over = true;
            _session._optimizer.CompleteStep();
            return _session.Record(_batch, _shares, _samples, _loss, LearningRate, _gain, GradNorm, measured, _updateMs, stepStartedAtMs);
        }
    }

    private float[]? _parametersBackup;
    private float[][]? _stateBackup;
    private float[]? _windowBackup; // the persistent gradient's window sum (BatchSizer.Persistent), which a ring's ranges add to

    /// <summary>Copies a range of the parameters and the optimizer state aside, before a sharded commit writes it.</summary>
    private void BackUp(int offset, int length)
    {
        _parametersBackup ??= new float[_parameters.Length];
        var state = _optimizer.StateBuffers;
        _stateBackup ??= state.Select(b => new float[b.Length]).ToArray();
        _parameters.AsSpan(offset, length).CopyTo(_parametersBackup.AsSpan(offset, length));
        for (int i = 0; i < state.Count; i++) state[i].AsSpan(offset, length).CopyTo(_stateBackup[i].AsSpan(offset, length));
        if (_sizing.Persistent is { } persistent)
        {
            _windowBackup ??= new float[_parameters.Length];
            persistent.Range(offset, length).CopyTo(_windowBackup.AsSpan(offset, length));
        }
    }

    private void Restore(int offset, int length)
    {
        _parametersBackup.AsSpan(offset, length).CopyTo(_parameters.AsSpan(offset, length));
        var state = _optimizer.StateBuffers;
        for (int i = 0; i < state.Count; i++) _stateBackup![i].AsSpan(offset, length).CopyTo(state[i].AsSpan(offset, length));
        if (_sizing.Persistent is { } persistent) _windowBackup.AsSpan(offset, length).CopyTo(persistent.Range(offset, length));
    }

    private void CheckNext(GlobalBatch batch)
    {
        if (batch.Step != NextStep)
            throw new InvalidOperationException($"commit for step {batch.Step} but the next step is {NextStep}");
    }

    private static double LossOf(IReadOnlyList<ShareTally> shares, int samples)
    {
        double lossSum = 0;
        foreach (var share in shares) lossSum += share.LossSum;
        return lossSum / samples;
    }

    private RunFailedException NonFiniteUpdate(long step, double lr, double gradNorm) =>
        Failure($"the update of step {step} (lr {lr:G4}, gradient norm {gradNorm:G4}) made parameters non-finite; "
                + "lower --lr or set --clip-grad-norm, and start again"
                + (NewestCheckpoint() is null ? "" : " or --resume from the checkpoint (it holds finite parameters)"));

    /// <summary>An applied step's bookkeeping: the noise scale, the record and its event, the step counter, a checkpoint if due.</summary>
    private StepRecord Record(GlobalBatch batch, IReadOnlyList<ShareTally> shares, int samples, double loss, double lr, double gain, double gradNorm,
        StepMeasurements measured, double updateMs, double stepStartedAtMs, double foldMs = 0)
    {
        using var span = StepTrace.Time(StepPhase.Record, batch.Step);
        // A step of one share computed as two halves (ShareHalves) gives its noise estimate from the halves.
        var shareNorms = shares is [{ Halves: { } halves }] ? halves.ToList() : shares.Select(s => (s.SampleCount, s.GradientSumSquaredNorm)).ToList();
        var noise = _noiseScale.Update(shareNorms, samples, gradNorm * gradNorm);
        Remember(loss);
        double stepMs = _wall.Elapsed.TotalMilliseconds - stepStartedAtMs;
        var timing = new StepTiming(measured.ComputeMs, measured.TransferMs, updateMs, stepMs);
        _sizing.Observe(samples, gain, shareNorms, gradNorm * gradNorm, _config.Adaptive is null ? "" : LayoutOf(shares), timing);
        var sizing = _sizing.Tracks
            ? new BatchSizingFigures(gain, _sizing.NoiseScale, _sizing.StatisticalEfficiency(samples), _sizing.Tau) : (BatchSizingFigures?)null;
        MovePast(batch);
        _trainingMilliseconds += stepMs;
        _trainedSamples += samples;
        var record = new StepRecord(
            batch.Step, batch.Epoch, batch.Size, shares.Select(s => s.SampleCount).ToArray(), loss, lr, gradNorm,
            timing, samples / (stepMs / 1000.0), ParameterVersion, noise,
            measured.BytesMoved, measured.PeakMemoryMbByNode,
            shares.Select(s => s.ComputeMilliseconds > 0 ? Math.Round(s.SampleCount / s.ComputeMilliseconds * 1000) : 0).ToArray(),
            measured.AllocatedBytesByNode, shares.Select(s => s.Worker).ToArray(), measured.WorkerLinkBytes, measured.BytesHandedOver, foldMs, sizing);
        _events.StepCompleted(record);
        StopIfTheLogFailed();
        CheckpointIfDue();
        return record;
    }

    /// <summary>
    /// A step whose loss or mean gradient holds a NaN or an infinity: the parameters and optimizer
    /// stay as they are, the batch is consumed (the same batch at the same parameters would give
    /// the same result), NonFiniteGradient names the shares' workers, and the step counter moves on
    /// so the run's position stays that of its sampler. The <see cref="TrainingConfig.MaxBadSteps"/>-th
    /// such step in a row ends the run.
    /// </summary>
    private void SkipNonFinite(GlobalBatch batch, IReadOnlyList<ShareTally> shares, double loss, double gradNorm)
    {
        _badStepsInARow++;
        var culprits = shares.Where(s => !s.Finite).Select(s => s.Worker).Distinct().ToArray();
        _events.NonFiniteGradient(batch.Step, culprits, loss, gradNorm, _badStepsInARow, _config.MaxBadSteps);
        if (_badStepsInARow >= _config.MaxBadSteps)
            throw Failure($"{_badStepsInARow} steps in a row (the last is step {batch.Step}) had a non-finite loss or gradient and were skipped "
                          + $"(from {(culprits.Length == 0 ? "the sum of finite shares" : string.Join(", ", culprits))}); "
                          + "lower --lr or set --clip-grad-norm, or allow more with --max-bad-steps");
        MovePast(batch);
        CheckpointIfDue();
    }

    /// <summary>
    /// Writes a checkpoint when the run's position (<see cref="NextStep"/>) is a multiple of --checkpoint-every. A write that
    /// fails (a full disk) ends the run here with the path and the free space: training on without the checkpoints the user
    /// asked for would be a decision nobody made. The checkpoints already written stay (a failed one leaves no file).
    /// </summary>
    private void CheckpointIfDue()
    {
        if (_checkpoints is null || NextStep % _config.CheckpointEvery != 0) return;
        try
        {
            WriteCheckpoint(_checkpoints);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string path = _checkpoints.PathFor(NextStep);
            throw Failure($"writing the checkpoint {path} failed ({e.Message}); {FreeSpace.Describe(path)}: free space there or choose another --checkpoint-dir", e);
        }
    }

    /// <summary>
    /// The event log is the record of the run (promise 6): once its file lost an event (a full disk), the run stops at the
    /// next step instead of training on unrecorded. The console still shows RunFailed.
    /// </summary>
    private void StopIfTheLogFailed()
    {
        if (_events.LogFailure is { } reason)
            throw Failure($"{reason}: free space there or choose another --runs-dir");
    }

    private string WriteCheckpoint(CheckpointStore store)
    {
        var clock = Stopwatch.StartNew();
        using var prepared = store.Prepare(Capture());
        // Logged before the file takes its name: a process killed in between leaves an event naming a file that never
        // appeared (a resume takes the previous checkpoint, logged as well), never a checkpoint the log does not name —
        // a resumed run is joined to the run it continues by that event (RunStitcher).
        _events.CheckpointWritten(NextStep, prepared.Path, prepared.Bytes, clock.Elapsed.TotalMilliseconds);
        prepared.Commit();
        _checkpointedStep = NextStep;
        return prepared.Path;
    }

    /// <summary>The newest intact checkpoint of this run's configuration, or null (also when checkpoints are off).</summary>
    public string? NewestCheckpoint() => _checkpoints?.NewestIntact();

    /// <summary>What a run that cannot go on reports: the reason, the last committed step, the newest intact checkpoint.</summary>
    public RunFailedException Failure(string reason, Exception? cause = null) => new(reason, LastCommittedStep, NewestCheckpoint(), cause);

    /// <summary>
    /// Ends the run on request (SIGTERM, SIGINT): with checkpoints on, writes one at the current
    /// step (unless one is already there), then logs RunInterrupted as the log's terminal event.
    /// Called between steps, so the state is exactly that of the last commit.
    /// </summary>
    public RunInterruptedException Interrupt(string reason)
    {
        string? checkpoint = null, checkpointError = null;
        if (_checkpoints is not null && NextStep > 0)
        {
            try
            {
                checkpoint = _checkpointedStep == NextStep ? _checkpoints.PathFor(NextStep) : WriteCheckpoint(_checkpoints);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                checkpointError = e.Message;
            }
        }
        _events.RunInterrupted(LastCommittedStep, reason, checkpoint, checkpointError, _wall.Elapsed.TotalSeconds);
        return new RunInterruptedException(LastCommittedStep, checkpoint);
    }

    /// <summary>Milliseconds since the session started: engines stamp step starts with it.</summary>
    public double NowMs => _wall.Elapsed.TotalMilliseconds;

    /// <summary>Whether to validate now (after the last commit): every EvalEvery steps, never at step 0.</summary>
    public bool ValidationDue => NextStep > 0 && !Finished
        && (_sizing.Varies && _config.EvalEvery is null ? _epochBeganAtStep == NextStep : _evalEvery > 0 && NextStep % _evalEvery == 0);

    /// <summary>
    /// Logs an evaluation at the current step. Evaluate the training subset first: the validation
    /// event that follows at the same step then carries the generalization gap.
    /// </summary>
    public void RecordEvaluation(DataSplit split, EvaluationResult result)
    {
        double trainAccuracy = double.NaN;
        if (split == DataSplit.Train) _lastTrainEvaluation = (NextStep, result);
        else if (split == DataSplit.Validation && _lastTrainEvaluation is { } train && train.Step == NextStep)
            trainAccuracy = train.Result.Accuracy;
        _events.EvalCompleted(NextStep, EpochsDone, split.LogName(), result, trainAccuracy);
        if (split == DataSplit.Validation && _config.TargetAccuracy is double target && result.Accuracy >= target && !TargetReached)
        {
            TargetReached = true;
            _events.TargetReached(NextStep, EpochsDone, result.Accuracy, target);
        }
    }

    /// <param name="train">The fixed training subset's evaluation at the end, or null when it is off.</param>
    /// <exception cref="RunFailedException">The event log lost an event (a full disk): the run's record is not whole.</exception>
    public RunSummary Complete(EvaluationResult? train, EvaluationResult validation, EvaluationResult test, int workers, string logPath)
    {
        if (train is { } t) RecordEvaluation(DataSplit.Train, t);
        RecordEvaluation(DataSplit.Validation, validation);
        RecordEvaluation(DataSplit.Test, test);
        StopIfTheLogFailed();
        double trainAccuracy = train?.Accuracy ?? double.NaN;
        var summary = new RunSummary(
            _events.RunId, NextStep, Math.Round(EpochsDone, 4), _config.GlobalBatch, workers,
            _recentLosses.Count == 0 ? double.NaN : _recentLosses.Average(),
            validation.MeanLoss, validation.Accuracy, test.Accuracy,
            _trainingMilliseconds > 0 ? _trainedSamples / (_trainingMilliseconds / 1000.0) : 0,
            GradientClipping.L2Norm(_parameters), logPath, trainAccuracy, trainAccuracy - validation.Accuracy);
        _events.RunCompleted(summary, _wall.Elapsed.TotalSeconds);
        return summary;
    }

    /// <summary>The share workers of the last step whose layout was named, in plan order, and that name.</summary>
    private string[] _layoutWorkers = [];
    private string _layout = "";

    /// <summary>
    /// Who computed a step (its share workers, sorted and joined): the throughput model fits each such layout apart. Named again
    /// only when the step's workers differ from the last step's, so a step of the same workers allocates nothing.
    /// </summary>
    private string LayoutOf(IReadOnlyList<ShareTally> shares)
    {
        bool same = shares.Count == _layoutWorkers.Length;
        for (int i = 0; same && i < shares.Count; i++) same = shares[i].Worker == _layoutWorkers[i];
        if (same) return _layout;
        _layoutWorkers = shares.Select(s => s.Worker).ToArray();
        _layout = string.Join(',', _layoutWorkers.Distinct().Order(StringComparer.Ordinal));
        return _layout;
    }

    private void Remember(double loss)
    {
        _recentLosses.Enqueue(loss);
        if (_recentLosses.Count > TrainLossWindow) _recentLosses.Dequeue();
    }
}
