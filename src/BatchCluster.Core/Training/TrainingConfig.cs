using BatchCluster.Core.Models;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Schedules;

namespace BatchCluster.Core.Training;

public enum Engine { Actors, Plain }

/// <summary>How parameters and gradient sums travel to and from workers in other processes (in-process workers always share fp32 arrays).</summary>
public enum TransferPrecision { Fp32, Bf16 }

/// <summary>Where a step's gradient sums meet (docs/architecture.md, "The ring").</summary>
public enum ReduceTopology
{
    /// <summary>At the coordinator: every worker sends its gradient sum there and gets the parameters from there (2·N models through its link per step).</summary>
    Star,
    /// <summary>Around a ring of the worker processes: they reduce-scatter, the coordinator updates shard by shard, they all-gather (one model each way through its link).</summary>
    Ring,
}

/// <summary>How a step's samples are apportioned among the workers.</summary>
public enum ShareSplit
{
    /// <summary>By declared torch threads: the same run twice is bitwise identical.</summary>
    Declared,
    /// <summary>By each worker's measured samples/s (a moving average): heterogeneous workers finish together.</summary>
    Capacity,
}

/// <summary>
/// Everything that defines a run. Logged whole in RunStarted, so a run can be recomputed from its log.
/// Exactly one of <see cref="Steps"/> and <see cref="Epochs"/> is set.
/// </summary>
public sealed record TrainingConfig
{
    public string Dataset { get; init; } = "fashion-mnist";
    public string DataDirectory { get; init; } = Data.FashionMnist.DefaultDirectory;
    public int ValidationSize { get; init; } = Data.FashionMnist.DefaultValidationSize;
    public ModelSpec Model { get; init; } = ModelSpec.Mlp();
    /// <summary>Samples per step; with <see cref="Adaptive"/> or <see cref="BatchSchedule"/> the batch of the first step.</summary>
    public int GlobalBatch { get; init; } = 128;
    /// <summary>--global-batch auto: the run chooses its batch by goodput within a range (docs/adaptive-batch.md); null: fixed.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] // a sweep's run ids hash the config: fixed runs keep theirs
    public BatchSizing.AdaptiveBatch? Adaptive { get; init; }
    /// <summary>--batch-schedule: the batch changes at these steps (ascending; a replay of an adaptive run's choices, or a batch ramp).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<BatchSizing.BatchChange>? BatchSchedule { get; init; }
    /// <summary>
    /// --noise-window: where the run estimates the gradient noise (auto, AdaScale), the signal ‖G‖² is the gradient's mean over
    /// windows of this many steps at the reference batch (τ; Gradients.PersistentGradient); 0: each step's own gradient
    /// (B_simple). Null: <see cref="DefaultNoiseWindow"/>.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public double? NoiseWindow { get; init; }
    /// <summary>The momentum's horizon 1/(1 − 0.9): the span over which the measured noise scale matched the steps to a target (docs/adaptive-batch.md).</summary>
    public const double DefaultNoiseWindow = 10;
    public double EffectiveNoiseWindow => NoiseWindow ?? DefaultNoiseWindow;
    /// <summary>
    /// --max-lr: with AdaScale, the most its gain may raise the rate to (the gain is at most this ÷ <see cref="LearningRate"/>), and
    /// what an adaptive run's planner counts a large batch's rate at. The noise says what a larger batch is worth at a rate it can
    /// take; this says which rates it can take. Null: no ceiling.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public double? MaxLearningRate { get; init; }
    /// <summary>Largest forward/backward pass on a worker; defaults to the whole share.</summary>
    public int? MicroBatch { get; init; }
    /// <summary>
    /// --bn-batch: the ghost batch, the samples each batch-norm layer normalises over in training; shares and micro-batches are
    /// then made of whole ghost batches and the step no longer depends on the layout (docs/batch-norm.md). Null: each worker's
    /// micro-batch, as before.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public int? BnBatch { get; init; }
    public int Workers { get; init; } = 4;
    public long? Steps { get; init; }
    public double? Epochs { get; init; }
    public double LearningRate { get; init; } = 0.1;
    public LrScaling LrScaling { get; init; } = LrScaling.None;
    public int BaseBatch { get; init; } = LearningRateSchedule.DefaultBaseBatch;
    public int WarmupSteps { get; init; }
    public OptimizerSettings Optimizer { get; init; } = new(OptimizerKind.Sgd);
    /// <summary>Global L2 clipping of the averaged gradient; 0 turns it off.</summary>
    public double ClipGradNorm { get; init; }
    /// <summary>
    /// Steps in a row whose loss or averaged gradient is not finite (each one skipped, never applied)
    /// after which the run stops with RunFailed.
    /// </summary>
    public int MaxBadSteps { get; init; } = 3;
    public long Seed { get; init; } = 1;
    /// <summary>libtorch intra-op threads per process; null picks cores / workers (at least 1).</summary>
    public int? Threads { get; init; }
    public Engine Engine { get; init; } = Engine.Actors;
    /// <summary>
    /// Where the workers (or the plain loop) compute: <c>cpu</c> (TorchSharp), <c>ilgpu-cpu</c> (the ILGPU kernels on
    /// ILGPU's CPU accelerator) or <c>cuda</c> / <c>cuda:N</c> (the ILGPU kernels on a CUDA device). Not in the
    /// fingerprint: a backend changes float rounding only.
    /// </summary>
    public string Device { get; init; } = "cpu";
    public string RunsDirectory { get; init; } = "runs";
    public string? RunId { get; init; }
    /// <summary>Validate every this many steps; null means once per epoch, 0 means only at the end.</summary>
    public long? EvalEvery { get; init; }
    public bool Shuffle { get; init; } = true;
    /// <summary>
    /// Training samples evaluated (eval mode) before every validation, for the generalization gap:
    /// the first this many of the training split, a fixed subset; 0 turns it off.
    /// </summary>
    public int TrainEvalSamples { get; init; } = 5000;
    /// <summary>Stop early once a validation reaches this accuracy (a fraction); null runs the whole length.</summary>
    public double? TargetAccuracy { get; init; }
    /// <summary>A step whose shares are not all back after this long has its late shares re-planned.</summary>
    public double StepDeadlineSeconds { get; init; } = 60;
    /// <summary>
    /// How a misbehaving worker is held out of the work (docs/robustness.md, "Quarantine"): after this many missed
    /// deadlines in a row, or at once for a share that cannot be right. Not in the fingerprint: it decides who
    /// computes, not what.
    /// </summary>
    public Coordination.QuarantinePolicy Quarantine { get; init; } = new();
    /// <summary>
    /// What the coordinator does with a share whose gradient norm is far from the step's others (docs/robustness.md,
    /// "Answers checked"). Not in the fingerprint, like the quarantine: with honest workers it changes nothing.
    /// </summary>
    public Gradients.OutlierPolicy Outliers { get; init; } = Gradients.OutlierPolicy.Log;
    public string? InitParams { get; init; }
    /// <summary>Write a checkpoint every this many steps; 0 turns checkpoints off.</summary>
    public long CheckpointEvery { get; init; }
    public string CheckpointDirectory { get; init; } = "checkpoints";
    /// <summary>Continue from the newest intact checkpoint in <see cref="CheckpointDirectory"/>.</summary>
    public bool Resume { get; init; }
    public string? ExportParams { get; init; }
    /// <summary>Also write TensorBoard scalars to &lt;this&gt;/&lt;run-id&gt;/; null writes none.</summary>
    public string? TensorBoardDirectory { get; init; }

    /// <summary>Precision on the wire (the data plane); the coordinator keeps fp32 master weights and averages in fp32/fp64.</summary>
    public TransferPrecision TransferPrecision { get; init; } = TransferPrecision.Fp32;
    public ShareSplit Split { get; init; } = ShareSplit.Declared;
    /// <summary>Where gradient sums meet; ring needs workers in other processes (node). Not in the fingerprint: it changes the order of additions only.</summary>
    public ReduceTopology Reduce { get; init; } = ReduceTopology.Star;
    /// <summary>Values per frame of a ring reduction (a chunk of reduce-scatter, all-gather and the shards to and from the coordinator).</summary>
    public int RingChunkValues { get; init; } = DefaultRingChunkValues;
    /// <summary>32 KiB of fp32: docs/performance.md, "The ring", chose it by measurement.</summary>
    public const int DefaultRingChunkValues = 8 * 1024;

    public int EffectiveThreads => Threads ?? Math.Max(1, Environment.ProcessorCount / (Engine == Engine.Plain ? 1 : Workers));

    /// <summary>The unit shares are made of: a ghost batch under --bn-batch, else one sample.</summary>
    public int ShareGranule => BnBatch ?? 1;

    /// <summary>What batch norm normalises over in training, in words (RunStarted): nothing without batch norm.</summary>
    public string Normalisation => !Model.HasBatchNorm ? "none (no batch norm)"
        : BnBatch is int k ? $"ghost batches of {k} samples (the same on every layout)"
        : MicroBatch is int m ? $"each micro-batch of up to {m} samples (changes with the layout: use --bn-batch)"
        : "each worker's whole share (changes with the layout: use --bn-batch)";

    /// <summary>
    /// The micro-batch for a share: the configured one, or the whole share when none is set — under --bn-batch, whole ghost
    /// batches of about <see cref="GhostPassSamples"/> samples instead (the result does not depend on it there; measured in the
    /// ghost-batch grid, a step of cnn-bn computed 512 samples in one pass in 610 ms and in passes of 64 in 164 ms, 128 in one pass
    /// in 32 ms and in passes of 32 in 51 ms: docs/batch-norm.md).
    /// </summary>
    public int EffectiveMicroBatch(int shareSize) => MicroBatch is int m ? m
        : BnBatch is int k ? Math.Min(Math.Max(1, shareSize), k * Math.Max(1, GhostPassSamples / k))
        : Math.Max(1, shareSize);

    /// <summary>The samples of a pass of whole ghost batches when --micro-batch is not given (at least one ghost batch).</summary>
    public const int GhostPassSamples = 128;

    /// <summary>Samples of the fixed training subset evaluated with every validation (0: none).</summary>
    public int TrainEvaluationCount(int trainSamples) => Math.Clamp(TrainEvalSamples, 0, trainSamples);

    /// <summary>Whether the run needs the smoothed gradient noise every step (adaptive batch, AdaScale): the plain loop then computes
    /// each batch as two shares, so there are always two sizes to estimate from.</summary>
    public bool NeedsNoiseEstimate => Adaptive is not null || LrScaling == LrScaling.AdaScale;

    public LearningRateSchedule Schedule => new(LearningRate, LrScaling, BaseBatch, GlobalBatch, WarmupSteps);

    public long TotalSteps(int stepsPerEpoch) =>
        Steps ?? (long)Math.Ceiling((Epochs ?? 1.0) * stepsPerEpoch - 1e-9);
}
