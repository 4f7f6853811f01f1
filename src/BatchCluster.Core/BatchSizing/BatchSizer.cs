using BatchCluster.Core.Gradients;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.BatchSizing;

/// <summary>What a checkpoint keeps of a run's batch sizing: the batch of the next step, the sample offset in its epoch, the
/// scale-invariant iterations done (τ), the smoothed noise estimates and where the current decision window began.</summary>
/// <param name="Persistent">The signal that persists (--noise-window), its open window included; null with --noise-window 0.</param>
public sealed record BatchSizingState(int Batch, int Offset, double Tau, NoiseScaleState Noise, long WindowStart, PersistentGradientState? Persistent = null);

/// <summary>
/// The global batch of every step and what the learning rate makes of it (docs/adaptive-batch.md): fixed (--global-batch B), from
/// a schedule (--batch-schedule), or chosen by goodput (--global-batch auto), and with --lr-scaling adascale the AdaScale gain and
/// the scale-invariant iterations τ the schedule advances in. Plain code, driven by the TrainingSession: it observes every applied
/// step and is asked, after each, which batch the next one takes.
/// </summary>
public sealed class BatchSizer
{
    /// <summary>Smoothing factor of the noise estimates per step at the reference batch; a step of M samples uses this^(M/M0), so the
    /// averages span about 100 · M0 samples at any batch.</summary>
    public const double SmoothingAtReference = 0.99;

    private readonly TrainingConfig _config;
    private readonly int _trainSamples;
    private readonly GradientNoiseScale _noise = new(SmoothingAtReference);
    private readonly PersistentGradient? _persistent;
    private readonly GoodputPlanner? _planner;
    private readonly ThroughputModel _throughput = new();
    private long _windowStart;

    /// <param name="parameterCount">The model's size: the persistent signal's window sums the step gradients (where the run estimates the noise).</param>
    /// <param name="tensorSizes">Its tensors in the flat order, which the window samples by block (null: one tensor).</param>
    public BatchSizer(TrainingConfig config, int trainSamples, int parameterCount, IReadOnlyList<int>? tensorSizes = null)
    {
        _config = config;
        _trainSamples = trainSamples;
        Batch = config.BatchSchedule is { Count: > 0 } schedule ? BatchChange.At(schedule, 0, config.GlobalBatch) : config.GlobalBatch;
        if (config.NeedsNoiseEstimate && config.EffectiveNoiseWindow > 0)
            _persistent = new PersistentGradient(parameterCount, config.EffectiveNoiseWindow, tensorSizes, config.Seed);
        if (config.Adaptive is { } adaptive)
            _planner = new GoodputPlanner(adaptive.Min, Math.Min(adaptive.Max, trainSamples), ReferenceBatch, config.ShareGranule, MaxGain);
    }

    /// <summary>The batch the next step takes.</summary>
    public int Batch { get; private set; }
    /// <summary>
    /// Scale-invariant iterations done, in steps at the reference batch: with AdaScale the sum of the applied steps' gains; where the
    /// batch varies without AdaScale their samples ÷ M0 (the linear rule's gain); with a fixed batch their count.
    /// </summary>
    public double Tau { get; private set; }

    /// <summary>Where the learning-rate schedule (its warm-up) stands at step <paramref name="step"/>: τ where the gain or the batch varies, else the step.</summary>
    public double ScheduleProgress(long step) => Tracks ? Tau : step;
    /// <summary>Whether the batch can differ between steps (adaptive or scheduled).</summary>
    public bool Varies => _config.Adaptive is not null || _config.BatchSchedule is { Count: > 0 };
    public bool AdaScale => _config.LrScaling == Schedules.LrScaling.AdaScale;
    /// <summary>
    /// Whether the run has batch-sizing state beyond its step count — τ, the estimates, the batch and its offset — which its
    /// checkpoints keep, its schedule advances by and its steps log: where the batch varies or AdaScale scales the rate.
    /// </summary>
    public bool Tracks => Varies || AdaScale;
    /// <summary>Whether the run needs the smoothed noise estimates (so every step must have two shares or more: TrainingConfig.NeedsNoiseEstimate).</summary>
    public bool EstimatesNoise => _config.NeedsNoiseEstimate;
    /// <summary>M0: the batch the learning rate was tuned for.</summary>
    public int ReferenceBatch => _config.BaseBatch;
    public ThroughputModel Throughput => _throughput;

    /// <summary>
    /// Where the run estimates the noise with a window (--noise-window &gt; 0): the engine adds each applied step's mean gradient
    /// to it before the step is observed. Null otherwise.
    /// </summary>
    public PersistentGradient? Persistent => _persistent;

    /// <summary>
    /// The signal ‖G‖² the noise scale and AdaScale's gain divide by: the smoothed mean gradient over windows (--noise-window)
    /// once a window has closed, else (and with --noise-window 0) the smoothed squared norm of each step's gradient.
    /// </summary>
    public double Signal => _persistent?.SmoothedSignal is double persistent && double.IsFinite(persistent) ? persistent : _noise.SmoothedGradSquared;

    /// <summary>B_noise = tr Σ / <see cref="Signal"/> from the smoothed estimates (NaN before the first).</summary>
    public double NoiseScale => Efficiency.NoiseScale(Signal, _noise.SmoothedTraceSigma);

    /// <summary>
    /// The most AdaScale's gain may raise the rate (--max-lr ÷ --lr): the rate's stability limit, which the noise does not see.
    /// +∞ without a ceiling or without AdaScale.
    /// </summary>
    public double MaxGain => AdaScale && _config.MaxLearningRate is double max ? max / _config.LearningRate : double.PositiveInfinity;

    /// <summary>The AdaScale gain a step of <paramref name="batch"/> samples gets now, at most <see cref="MaxGain"/> (1 without AdaScale).</summary>
    public double GainAt(int batch) =>
        AdaScale ? Math.Min(Efficiency.AdaScaleGain(batch, ReferenceBatch, Signal, _noise.SmoothedTraceSigma), MaxGain) : 1;

    /// <summary>E(M), counting no more of a batch's rate than <see cref="MaxGain"/> lets it have.</summary>
    public double StatisticalEfficiency(int batch) => Efficiency.Statistical(batch, ReferenceBatch, NoiseScale, MaxGain);

    /// <summary>An applied step: its gain (the one its learning rate used) advances τ; its shares feed the noise estimates, its timing the throughput model.</summary>
    /// <param name="shares">Each share's size and the squared norm of its gradient sum.</param>
    /// <param name="layout">Who computed it (the share workers, sorted and joined).</param>
    public void Observe(int batch, double gainUsed, IReadOnlyList<(int Size, double SumSquaredNorm)> shares, double meanGradientSquaredNorm,
        string layout, StepTiming timing)
    {
        double progress = AdaScale ? gainUsed : Varies ? (double)batch / ReferenceBatch : 1;
        Tau += progress;
        if (EstimatesNoise)
        {
            _noise.Update(shares, batch, meanGradientSquaredNorm, Math.Pow(SmoothingAtReference, (double)batch / ReferenceBatch));
            _persistent?.StepDone(batch, progress, _noise.SmoothedTraceSigma);
        }
        if (_planner is not null) _throughput.Observe(layout, batch, timing.ComputeMs, timing.StepMs, timing.TransferMs);
    }

    /// <summary>
    /// Decides the batch of step <paramref name="nextStep"/>: the schedule's, or — at the end of a decision window, once the noise
    /// estimates and the current layout's throughput exist — the planner's. Returns the decision when one was made (the planner's,
    /// whether it changes the batch or keeps it; the schedule's when it changes it), else null.
    /// </summary>
    public BatchDecision? Next(long nextStep)
    {
        if (_config.BatchSchedule is { Count: > 0 } schedule)
        {
            int scheduled = BatchChange.At(schedule, nextStep, _config.GlobalBatch);
            if (scheduled == Batch) return null;
            var change = new BatchDecision(Batch, scheduled, double.NaN, double.NaN, NoiseScale, default);
            Batch = scheduled;
            return change;
        }
        if (_planner is null || _config.Adaptive is not { } adaptive) return null;
        if (nextStep - _windowStart < adaptive.WindowAt(Batch, _trainSamples)) return null;
        if (!_throughput.Ready || double.IsNaN(NoiseScale)) return null; // decide as soon as both exist
        _windowStart = nextStep;
        var decision = _planner.Decide(Batch, _throughput.Terms, NoiseScale);
        Batch = decision.Chosen;
        return decision;
    }

    public BatchSizingState Capture(int offset) => new(Batch, offset, Tau, _noise.State, _windowStart, _persistent?.State);

    public void Restore(BatchSizingState state)
    {
        Batch = state.Batch;
        Tau = state.Tau;
        _noise.Restore(state.Noise);
        if (_persistent is not null)
            _persistent.Restore(state.Persistent ?? throw new InvalidDataException("the checkpoint holds no window of the persistent gradient, but this run estimates the noise with one"));
        _windowStart = state.WindowStart;
    }
}
