using System.CommandLine;
using System.Text.RegularExpressions;
using BatchCluster.Core.Models;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Schedules;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Options;

/// <summary>
/// The flags of <c>train</c> (also taken by <c>node --role coordinator</c> and <c>sweep</c>), each
/// declared once with its type, default, help and rule, and how they become a
/// <see cref="TrainingConfig"/>. Rules between flags (e.g. --hidden only for the MLP) are checked in
/// <see cref="ToConfig"/>. A sweep takes lists for a few of them: it declares those itself, and these
/// are then left out (<c>listsElsewhere</c>).
/// </summary>
public sealed partial class TrainOptions
{
    /// <summary>The flags whose sweep versions are lists (sweep declares them).</summary>
    public static readonly string[] SweepLists = ["global-batch", "workers", "micro-batch", "lr-scaling"];

    public Option<string> Dataset { get; } = Opt.Choice("dataset", "data set (synthetic only when asked for)", "fashion-mnist", "fashion-mnist", "synthetic");
    public Option<string?> DataDir { get; } = Opt.Text("data-dir", $"IDX files [default: {Core.Data.FashionMnist.DefaultDirectory}]", "DIR");
    public Option<int?> ValidationSize { get; } = Opt.Int("validation-size", "training images held out for validation, from the end [default: 5000]", 0);
    public Option<string> Model { get; } = Opt.Choice("model", "network", "mlp", ModelSpec.Names);
    public Option<int[]?> Hidden { get; } = Opt.IntList("hidden", "MLP hidden sizes [default: 256]", 1, ModelSpec.MaxHiddenSize);
    public Option<string?>? GlobalBatch { get; }
    public Option<string?> BatchRange { get; } = Opt.Text("batch-range",
        $"with --global-batch auto: the batches it may choose [default: {BatchFlags.DefaultMin}:{BatchFlags.DefaultMax}]", "MIN:MAX");
    public Option<long?> AdaptEvery { get; } = Opt.Long("adapt-every",
        "with --global-batch auto: reconsider the batch every K steps [default: once per epoch, at least 100 steps]", 1, helpName: "K");
    public Option<string?> BatchSchedule { get; } = Opt.Text("batch-schedule",
        "change the global batch at these steps (a ramp, or the choices of an adaptive run replayed)", "STEP:B,…");
    public Option<int?>? MicroBatch { get; }
    public Option<int?> BnBatch { get; } = Opt.Int("bn-batch",
        "cnn-bn: batch norm normalises over ghost batches of K samples, the same on every layout; batches, shares and micro-batches are made of whole ghost batches (docs/batch-norm.md) [default: each worker's micro-batch]", 2, helpName: "K");
    public Option<int?>? Workers { get; }
    public Option<long?> Steps { get; } = Opt.Long("steps", "run length in optimizer steps (or --epochs) [default: 1 epoch]", 1, helpName: "S");
    public Option<double?> Epochs { get; } = Opt.Number("epochs", "run length in epochs (or --steps)", 0, minExclusive: true, helpName: "E");
    // The update runs in float32: a larger rate is infinite there and would turn every parameter into NaN.
    public Option<double?> Lr { get; } = Opt.Number("lr", "base learning rate [default: 0.1]", 0, float.MaxValue, minExclusive: true);
    public Option<string>? LrScaling { get; }
    public Option<int?> BaseBatch { get; } = Opt.Int("base-batch", "reference batch of the scaling rule [default: 256]", 1, helpName: "B0");
    public Option<double?> NoiseWindow { get; } = Opt.Number("noise-window",
        $"with --global-batch auto or --lr-scaling adascale: the noise scale's signal is the gradient's mean over windows of T steps at --base-batch (docs/adaptive-batch.md); 0: each step's own gradient, B_simple [default: {TrainingConfig.DefaultNoiseWindow}]",
        0, 1e6, helpName: "T");
    public Option<double?> MaxLr { get; } = Opt.Number("max-lr",
        "with --lr-scaling adascale (the default of --global-batch auto): the most AdaScale's gain may raise the rate to, the rate's stability limit; an auto run also values a batch at no more than it (docs/adaptive-batch.md) [default: none]",
        0, float.MaxValue, minExclusive: true, helpName: "L");
    public Option<int?> WarmupSteps { get; } = Opt.Int("warmup-steps", "linear warm-up to the peak lr over W steps [default: 0]", 0, helpName: "W");
    public Option<string> Optimizer { get; } = Opt.Choice("optimizer", "optimizer (PyTorch semantics)", "sgd", "sgd", "momentum", "adam");
    public Option<double?> Momentum { get; } = Opt.Number("momentum", "momentum of --optimizer momentum [default: 0.9]", 0, 1, helpName: "μ");
    public Option<string?> Nesterov { get; } = Opt.Bool("nesterov", "Nesterov momentum (--optimizer momentum) [default: false]");
    public Option<double?> WeightDecay { get; } = Opt.Number("weight-decay", "L2 weight decay added to the gradient [default: 0]", 0, helpName: "λ");
    public Option<double?> ClipGradNorm { get; } = Opt.Number("clip-grad-norm", "clip the averaged gradient to this L2 norm; 0 = off [default: 0]", 0, helpName: "C");
    public Option<int?> MaxBadSteps { get; } = Opt.Int("max-bad-steps",
        "stop after N steps in a row with a NaN/∞ loss or gradient (each one skipped, never applied) [default: 3]", 1, 1_000_000);
    public Option<long?> Seed { get; } = Opt.Long("seed", "the training seed: initial weights and the order of the data [default: 1]", long.MinValue);
    public Option<int?> Threads { get; } = Opt.Int("threads", "libtorch threads [default: cores / workers]", 1, 256, "T");
    public Option<string?> Device { get; } = Opt.Text("device", $"where the workers compute: {Gpu.ComputeBackends.Help} [default: cpu]", "DEVICE");
    public Option<string>? Engine { get; }
    public Option<string?> RunsDir { get; } = Opt.Text("runs-dir", "event logs go to DIR/<run-id>/events.clef [default: runs]", "DIR");
    public Option<string?> RunId { get; } = Opt.Text("run-id", "the run's name [default: generated]", "ID");
    public Option<long?> EvalEvery { get; } = Opt.Long("eval-every", "validate every K steps; 0 = only at the end [default: once per epoch]", 0, helpName: "K");
    public Option<string?> Shuffle { get; } = Opt.Bool("shuffle", "false takes the training set in order [default: true]");
    public Option<string?> InitParams { get; } = Opt.Text("init-params", "start from these parameters (raw little-endian float32)", "FILE");
    public Option<string?> ExportParams { get; } = Opt.Text("export-params", "write the final parameters there (same format)", "FILE");
    public Option<double?> StepDeadline { get; } = Opt.Number("step-deadline", "a share later than this moves onto idle workers [default: 60]", 0, minExclusive: true, helpName: "SECONDS");
    public Option<int?> QuarantineAfterMisses { get; } = Opt.Int("quarantine-after-misses",
        "quarantine a worker that misses this many step deadlines in a row (docs/robustness.md) [default: 1]", 1, 1000);
    public Option<double?> QuarantineSeconds { get; } = Opt.Number("quarantine-seconds",
        "a worker's first quarantine lasts this long, each further one twice as long [default: 10]", 0, 86_400, minExclusive: true, helpName: "SECONDS");
    public Option<int?> QuarantineLimit { get; } = Opt.Int("quarantine-limit",
        "quarantines a worker may serve; the next offence expels it (its node is downed) [default: 3]", 0, 1000);
    public Option<string> OutlierPolicy { get; } = Opt.Choice("outlier-policy",
        "a share whose gradient norm is far from the step's others is only logged, or its worker quarantined and its samples computed again (docs/robustness.md)",
        "log", "off", "log", "quarantine");
    public Option<long?> CheckpointEvery { get; } = Opt.Long("checkpoint-every", "write a checkpoint every K steps; 0 = never [default: 0]", 0, helpName: "K");
    public Option<string?> CheckpointDir { get; } = Opt.Text("checkpoint-dir", "where checkpoints go [default: checkpoints]", "DIR");
    public Option<bool> Resume { get; } = Opt.Switch("resume", "continue from the newest intact checkpoint in --checkpoint-dir");
    public Option<int?> TrainEvalSamples { get; } = Opt.Int("train-eval-samples",
        "evaluate the first N training samples before each validation, for the generalization gap; 0 = off [default: 5000]", 0);
    public Option<double?> TargetAccuracy { get; } = Opt.Number("target-accuracy", "stop once a validation reaches accuracy A (a fraction)", 0, 1, minExclusive: true, helpName: "A");
    public Option<string?> TensorBoard { get; } = Opt.Text("tensorboard", "also write TensorBoard scalars to DIR/<run-id>/", "DIR");
    public Option<string> Split { get; } = Opt.Choice("split",
        "shares by declared threads (bitwise reproducible) or by each worker's measured samples/s", "declared", "declared", "capacity");
    public Option<string> TransferPrecision { get; } = Opt.Choice("transfer-precision",
        "tensors to and from workers in other processes (node only)", "fp32", "fp32", "bf16");
    public Option<string> Reduce { get; } = Opt.Choice("reduce",
        "where gradient sums meet (node only): at the coordinator (star: 2 models per worker through its link each step), or around a ring of the worker nodes (ring: one model each way through its link, whatever their number)",
        "star", "star", "ring");
    public Option<int?> RingChunk { get; } = Opt.Int("ring-chunk",
        $"KiB of fp32 values per frame of a ring reduction [default: {TrainingConfig.DefaultRingChunkValues * 4 / 1024}]", 1, 1024 * 1024, "KIB");

    /// <param name="listsElsewhere">A sweep: leave out the flags it takes as lists (<see cref="SweepLists"/>).</param>
    /// <param name="withEngine">Whether --engine and --workers exist (train, sweep; a coordinator node has neither).</param>
    public TrainOptions(bool listsElsewhere = false, bool withEngine = true)
    {
        if (!listsElsewhere)
        {
            GlobalBatch = Opt.Text("global-batch", "samples per optimizer step, or auto: chosen by goodput as the run goes (docs/adaptive-batch.md) [default: 128]", "B|auto");
            MicroBatch = Opt.Int("micro-batch", "most samples per forward/backward on a worker [default: the whole share]", 1, helpName: "M");
            LrScaling = Opt.Choice("lr-scaling",
                "scale lr with B/base-batch: not, linearly, by its square root, or by AdaScale's gain from the measured noise [default: none; adascale with --global-batch auto (sqrt with adam)]",
                "none", "none", "linear", "sqrt", "adascale");
            if (withEngine) Workers = Opt.Int("workers", "worker actors of the local simulated cluster [default: 4]", 1, 1024);
        }
        if (withEngine) Engine = Opt.Choice("engine", "local simulated cluster or the single-process reference loop", "actors", "actors", "plain");
    }

    /// <summary>Every option this instance declares, in help order.</summary>
    public IEnumerable<Option> All => new Option?[]
    {
        Dataset, DataDir, ValidationSize, Model, Hidden, GlobalBatch, BatchRange, AdaptEvery, BatchSchedule, MicroBatch, BnBatch, Workers, Steps, Epochs, Lr, LrScaling, BaseBatch, NoiseWindow, MaxLr, WarmupSteps,
        Optimizer, Momentum, Nesterov, WeightDecay, ClipGradNorm, MaxBadSteps, Seed, Threads, Device, Engine, RunsDir, RunId, EvalEvery, Shuffle,
        TrainEvalSamples, TargetAccuracy, StepDeadline, QuarantineAfterMisses, QuarantineSeconds, QuarantineLimit, OutlierPolicy, Split, TransferPrecision, Reduce, RingChunk, CheckpointEvery, CheckpointDir, Resume, InitParams,
        ExportParams, TensorBoard,
    }.OfType<Option>();

    public void AddTo(Command command)
    {
        foreach (var option in All) command.Options.Add(option);
    }

    /// <summary>The configuration 'train' runs with these flags (for tools and tests).</summary>
    public static TrainingConfig Parse(IReadOnlyList<string> args)
    {
        var options = new TrainOptions();
        var command = new RootCommand();
        options.AddTo(command);
        var result = command.Parse(args);
        if (result.Errors.Count > 0) throw new UsageException(CommandLineErrors.Describe(result));
        return options.ToConfig(result);
    }

    private static T? Value<T>(ParseResult r, Option<T>? option) => option is null ? default : r.GetValue(option);

    public TrainingConfig ToConfig(ParseResult r)
    {
        string model = r.GetValue(Model)!;
        int[]? hidden = r.List(Hidden);
        if (hidden is not null && model != "mlp")
            throw new UsageException($"--hidden applies to --model mlp only, not '{model}'");
        if (r.Given(Steps) && r.Given(Epochs))
            throw new UsageException("give either --steps or --epochs, not both");

        string optimizerName = r.GetValue(Optimizer)!;
        var (globalBatch, adaptive, schedule, scaling) = Batch(r, optimizerName);
        int smallestBatch = adaptive?.Min ?? Math.Min(globalBatch, schedule?.Min(c => c.Batch) ?? globalBatch);
        if (Value(r, MicroBatch) is int micro && micro > globalBatch && adaptive is null && schedule is null)
            throw new UsageException($"--micro-batch {micro} is larger than --global-batch {globalBatch}, so it would never split a share; use at most {globalBatch}, or drop it to compute each share whole");
        int workers = Value(r, Workers) ?? 4;
        var engine = Value(r, Engine) == "plain" ? Core.Training.Engine.Plain : Core.Training.Engine.Actors;
        if (engine == Core.Training.Engine.Actors && Workers is not null && r.Given(Workers) && workers > smallestBatch)
            throw new UsageException(adaptive is null && schedule is null
                ? $"--workers {workers} is more than --global-batch {globalBatch}: some workers would never get a sample; use at most {globalBatch} workers"
                : $"--workers {workers} is more than the smallest global batch of the run, {smallestBatch}: some workers would never get a sample; use at most {smallestBatch} workers");

        if (r.Given(Nesterov) && optimizerName != "momentum")
            throw new UsageException($"--nesterov applies to --optimizer momentum only, not '{optimizerName}'");
        if (r.Given(Momentum) && optimizerName != "momentum")
            throw new UsageException($"--momentum applies to --optimizer momentum only, not '{optimizerName}'");
        var optimizer = new OptimizerSettings(
            optimizerName switch { "momentum" => OptimizerKind.Momentum, "adam" => OptimizerKind.Adam, _ => OptimizerKind.Sgd },
            Momentum: r.GetValue(Momentum) ?? 0.9,
            Nesterov: Opt.AsBool(r.GetValue(Nesterov)) ?? false,
            WeightDecay: r.GetValue(WeightDecay) ?? 0);

        // A sweep (no --global-batch of its own) may hold an auto run among its batches: there the flag describes it.
        if (r.Given(NoiseWindow) && GlobalBatch is not null && adaptive is null && scaling != Core.Schedules.LrScaling.AdaScale)
            throw new UsageException("--noise-window applies where the run estimates the gradient noise: --global-batch auto or --lr-scaling adascale");
        double learningRate = r.GetValue(Lr) ?? 0.1;
        if (r.GetValue(MaxLr) is double maxLr)
        {
            if (GlobalBatch is not null && scaling != Core.Schedules.LrScaling.AdaScale)
                throw new UsageException("--max-lr caps AdaScale's gain, so it applies with --lr-scaling adascale (the default of --global-batch auto); under another rule give the rate itself with --lr");
            if (maxLr < learningRate)
                throw new UsageException(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"--max-lr {maxLr} is below --lr {learningRate}: the ceiling must be at least the base rate"));
        }

        string? runId = r.GetValue(RunId);
        if (runId is not null && (!RunIdPattern().IsMatch(runId) || runId.Trim('.').Length == 0))
            throw new UsageException($"--run-id may hold only letters, digits, '.', '_' and '-', and not only dots (it names a directory inside --runs-dir), not '{runId}'");

        var reduce = r.GetValue(Reduce) == "ring" ? ReduceTopology.Ring : ReduceTopology.Star;
        if (r.Given(RingChunk) && reduce != ReduceTopology.Ring)
            throw new UsageException("--ring-chunk applies to --reduce ring only");

        int? ghost = r.GetValue(BnBatch);
        if (ghost is int k)
        {
            if (model != "cnn-bn")
                throw new UsageException($"--bn-batch applies to --model cnn-bn (the model with batch norm), not '{model}'");
            if (reduce == ReduceTopology.Ring)
                throw new UsageException("--bn-batch needs each share's batch-norm statistics at the coordinator, and --reduce ring keeps shares on the workers: use --reduce star");
            var batches = adaptive is { } a ? [a.Min, a.Max] : new[] { globalBatch }.Concat(schedule?.Select(c => c.Batch) ?? []);
            if (batches.FirstOrDefault(b => b % k != 0) is int odd and > 0)
                throw new UsageException(
                    adaptive is not null ? $"--batch-range {adaptive.Min}:{adaptive.Max} has an end that is not a whole number of ghost batches of --bn-batch {k}: use multiples of {k}"
                    : odd != globalBatch ? $"--batch-schedule's batch {odd} is not a whole number of ghost batches of --bn-batch {k}: use multiples of {k}"
                    : $"--global-batch {odd} is not a whole number of ghost batches of --bn-batch {k}: use a multiple of {k}");
            if (Value(r, MicroBatch) is int m && m % k != 0)
                throw new UsageException($"--micro-batch {m} is not a whole number of ghost batches of --bn-batch {k}: use a multiple of {k}");
        }

        string dataset = r.GetValue(Dataset)!;
        if (dataset == "synthetic" && r.Given(DataDir))
            throw new UsageException("--data-dir applies to --dataset fashion-mnist only; the synthetic data set is generated");

        return new TrainingConfig
        {
            Dataset = dataset,
            DataDirectory = r.GetValue(DataDir) ?? Core.Data.FashionMnist.DefaultDirectory,
            ValidationSize = r.GetValue(ValidationSize) ?? Core.Data.FashionMnist.DefaultValidationSize,
            Model = model == "mlp" ? ModelSpec.Mlp(hidden ?? []) : ModelSpec.Cnn(batchNorm: model == "cnn-bn"),
            GlobalBatch = globalBatch,
            Adaptive = adaptive,
            BatchSchedule = schedule,
            MicroBatch = Value(r, MicroBatch),
            BnBatch = ghost,
            Workers = engine == Core.Training.Engine.Plain ? 1 : workers,
            Steps = r.GetValue(Steps),
            Epochs = r.GetValue(Epochs),
            LearningRate = learningRate,
            LrScaling = scaling,
            BaseBatch = r.GetValue(BaseBatch) ?? LearningRateSchedule.DefaultBaseBatch,
            WarmupSteps = r.GetValue(WarmupSteps) ?? 0,
            NoiseWindow = r.GetValue(NoiseWindow),
            MaxLearningRate = r.GetValue(MaxLr),
            Optimizer = optimizer,
            ClipGradNorm = r.GetValue(ClipGradNorm) ?? 0,
            MaxBadSteps = r.GetValue(MaxBadSteps) ?? 3,
            Seed = r.GetValue(Seed) ?? 1,
            Threads = r.GetValue(Threads),
            Device = r.GetValue(Device) ?? "cpu",
            Engine = engine,
            RunsDirectory = r.GetValue(RunsDir) ?? "runs",
            RunId = runId,
            EvalEvery = r.GetValue(EvalEvery),
            TrainEvalSamples = r.GetValue(TrainEvalSamples) ?? 5000,
            TargetAccuracy = r.GetValue(TargetAccuracy),
            Shuffle = Opt.AsBool(r.GetValue(Shuffle)) ?? true,
            StepDeadlineSeconds = r.GetValue(StepDeadline) ?? 60,
            Quarantine = new Core.Coordination.QuarantinePolicy(r.GetValue(QuarantineAfterMisses) ?? 1,
                1000 * (r.GetValue(QuarantineSeconds) ?? 10), r.GetValue(QuarantineLimit) ?? 3),
            Outliers = Enum.Parse<Core.Gradients.OutlierPolicy>(r.GetValue(OutlierPolicy)!, ignoreCase: true),
            InitParams = r.GetValue(InitParams),
            CheckpointEvery = r.GetValue(CheckpointEvery) ?? 0,
            CheckpointDirectory = r.GetValue(CheckpointDir) ?? "checkpoints",
            Resume = r.GetValue(Resume),
            ExportParams = r.GetValue(ExportParams),
            TensorBoardDirectory = r.GetValue(TensorBoard),
            Split = r.GetValue(Split) == "capacity" ? ShareSplit.Capacity : ShareSplit.Declared,
            TransferPrecision = r.GetValue(TransferPrecision) == "bf16" ? Core.Training.TransferPrecision.Bf16 : Core.Training.TransferPrecision.Fp32,
            Reduce = reduce,
            RingChunkValues = r.GetValue(RingChunk) is int kib ? kib * 1024 / sizeof(float) : TrainingConfig.DefaultRingChunkValues,
        };
    }

    /// <summary>
    /// The batch flags together: a fixed batch, a schedule, or auto (its range and window; it starts at --base-batch, the batch the
    /// learning rate is tuned for, held in the range), and the LR scaling that goes with them.
    /// </summary>
    private (int Initial, Core.BatchSizing.AdaptiveBatch? Adaptive, Core.BatchSizing.BatchChange[]? Schedule, LrScaling Scaling) Batch(ParseResult r, string optimizer)
    {
        int? fixedBatch = Value(r, GlobalBatch) is string text ? BatchFlags.GlobalBatch(text) : 128;
        bool auto = fixedBatch is null;
        if (GlobalBatch is null && (r.Given(BatchRange) || r.Given(AdaptEvery)))
        {
            // A sweep: its list says whether there is an auto run; these flags describe it.
            var (low, high) = r.GetValue(BatchRange) is string sweepRange ? BatchFlags.Range(sweepRange) : (BatchFlags.DefaultMin, BatchFlags.DefaultMax);
            return (128, new Core.BatchSizing.AdaptiveBatch(low, high, r.GetValue(AdaptEvery)), null, ScalingOf(Value(r, LrScaling), optimizer, auto: false, given: false));
        }
        if (!auto && (r.Given(BatchRange) || r.Given(AdaptEvery)))
            throw new UsageException($"--{(r.Given(BatchRange) ? "batch-range" : "adapt-every")} applies to --global-batch auto only");
        var schedule = r.GetValue(BatchSchedule) is string plan ? BatchFlags.Schedule(plan) : null;
        if (auto && schedule is not null)
            throw new UsageException("give either --global-batch auto or --batch-schedule: a run's batch is chosen by goodput or follows a schedule, not both");
        var scaling = ScalingOf(Value(r, LrScaling), optimizer, auto, LrScaling is not null && r.Given(LrScaling));
        if (!auto) return (fixedBatch!.Value, null, schedule, scaling);
        var (min, max) = r.GetValue(BatchRange) is string range ? BatchFlags.Range(range) : (BatchFlags.DefaultMin, BatchFlags.DefaultMax);
        int initial = Math.Clamp(r.GetValue(BaseBatch) ?? LearningRateSchedule.DefaultBaseBatch, min, max);
        return (initial, new Core.BatchSizing.AdaptiveBatch(min, max, r.GetValue(AdaptEvery)), null, scaling);
    }

    /// <summary>The LR scaling named, or with auto and none named AdaScale (sqrt for Adam); AdaScale with Adam is refused.</summary>
    private static LrScaling ScalingOf(string? name, string optimizer, bool auto, bool given)
    {
        var scaling = name switch
        {
            "linear" => Core.Schedules.LrScaling.Linear,
            "sqrt" => Core.Schedules.LrScaling.Sqrt,
            "adascale" => Core.Schedules.LrScaling.AdaScale,
            _ when auto && !given => optimizer == "adam" ? Core.Schedules.LrScaling.Sqrt : Core.Schedules.LrScaling.AdaScale,
            _ => Core.Schedules.LrScaling.None,
        };
        if (scaling == Core.Schedules.LrScaling.AdaScale && optimizer == "adam")
            throw new UsageException("--lr-scaling adascale is derived for SGD (with or without momentum), not adam, whose steps are normalised already; with --optimizer adam use --lr-scaling sqrt or none");
        return scaling;
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex RunIdPattern();
}
