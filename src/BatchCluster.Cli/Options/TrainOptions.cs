using System.Text.RegularExpressions;
using BatchCluster.Core.Models;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Schedules;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Options;

/// <summary>The flags of <c>train</c> and how they become a <see cref="TrainingConfig"/>.</summary>
public static partial class TrainOptions
{
    public static readonly string[] Flags =
    [
        "dataset", "data-dir", "validation-size", "model", "hidden", "global-batch", "micro-batch", "workers", "steps", "epochs",
        "lr", "lr-scaling", "base-batch", "warmup-steps", "optimizer", "momentum", "nesterov", "weight-decay", "clip-grad-norm",
        "seed", "threads", "engine", "runs-dir", "run-id", "eval-every", "shuffle", "init-params", "export-params", "step-deadline",
        "checkpoint-every", "checkpoint-dir", "resume", "train-eval-samples", "target-accuracy", "tensorboard",
        "split", "transfer-precision", "max-bad-steps",
    ];

    public const string Help = """
        batchcluster train [flags]
          --dataset fashion-mnist|synthetic   data set (default fashion-mnist; synthetic only when asked for)
          --data-dir DIR                      IDX files (default /usr/share/datasets/fashion-mnist)
          --validation-size N                 training images held out for validation, from the end (default 5000)
          --model mlp|cnn|cnn-bn              network (default mlp)
          --hidden 256[,128…]                 MLP hidden sizes (default 256)
          --global-batch B                    samples per optimizer step (default 128)
          --micro-batch M                     most samples per forward/backward on a worker (default: whole share)
          --workers N                         worker actors of the local simulated cluster (default 4)
          --steps S | --epochs E              run length (default 1 epoch)
          --lr X                              base learning rate (default 0.1)
          --lr-scaling none|linear|sqrt       scale lr by B/base-batch (default none)
          --base-batch B0                     reference batch of the scaling rule (default 256)
          --warmup-steps W                    linear warm-up to the peak lr over W steps (default 0)
          --optimizer sgd|momentum|adam       (default sgd)
          --momentum μ  --nesterov true|false --weight-decay λ   --clip-grad-norm C (0 = off)
          --max-bad-steps N                   stop after N steps in a row with a NaN/∞ loss or gradient (each one
                                              skipped, never applied; default 3)
          --seed N                            (default 1)
          --threads T                         libtorch threads (default cores / workers)
          --engine actors|plain               local simulated cluster or the single-process reference loop (default actors)
          --runs-dir DIR  --run-id ID         event log at DIR/ID/events.clef (default runs/, generated id)
          --eval-every K                      validate every K steps (default once per epoch; 0 = only at the end)
          --train-eval-samples N              evaluate the first N training samples before each validation, for
                                              train accuracy and the generalization gap (default 5000; 0 = off)
          --target-accuracy A                 stop once a validation reaches accuracy A (a fraction, e.g. 0.85)
          --shuffle true|false                (default true; false takes the training set in order)
          --step-deadline SECONDS             a share later than this moves onto idle workers (default 60)
          --split declared|capacity           shares by declared threads (default; bitwise reproducible) or by each
                                              worker's measured samples/s (heterogeneous workers finish together)
          --transfer-precision fp32|bf16      tensors to and from workers in other processes (node only; default fp32)
          --checkpoint-every K                write a checkpoint every K steps (default 0 = never)
          --checkpoint-dir DIR                where checkpoints go (default checkpoints)
          --resume                            continue from the newest intact checkpoint in --checkpoint-dir
          --init-params FILE                  start from these parameters (raw little-endian float32)
          --export-params FILE                write the final parameters there (same format)
          --tensorboard DIR                   also write TensorBoard scalars to DIR/<run-id>/ (tensorboard --logdir DIR)
        """;

    public static TrainingConfig Parse(FlagSet flags)
    {
        string model = flags.Choice("model", "mlp", ModelSpec.Names);
        int[]? hidden = flags.IntList("hidden", 1, ModelSpec.MaxHiddenSize);
        if (hidden is not null && model != "mlp")
            throw new UsageException($"--hidden applies to --model mlp only, not '{model}'");
        if (flags.Has("steps") && flags.Has("epochs"))
            throw new UsageException("give either --steps or --epochs, not both");

        int globalBatch = flags.Int("global-batch", 1) ?? 128;
        if (flags.Int("micro-batch", 1) is int micro && micro > globalBatch)
            throw new UsageException($"--micro-batch {micro} is larger than --global-batch {globalBatch}, so it would never split a share; use at most {globalBatch}, or drop it to compute each share whole");
        int workers = flags.Int("workers", 1, 1024) ?? 4;
        var engine = flags.Choice("engine", "actors", "actors", "plain") == "plain" ? Engine.Plain : Engine.Actors;
        if (engine == Engine.Actors && flags.Has("workers") && workers > globalBatch)
            throw new UsageException($"--workers {workers} is more than --global-batch {globalBatch}: some workers would never get a sample; use at most {globalBatch} workers");

        string optimizerName = flags.Choice("optimizer", "sgd", "sgd", "momentum", "adam");
        if (flags.Has("nesterov") && optimizerName != "momentum")
            throw new UsageException($"--nesterov applies to --optimizer momentum only, not '{optimizerName}'");
        if (flags.Has("momentum") && optimizerName != "momentum")
            throw new UsageException($"--momentum applies to --optimizer momentum only, not '{optimizerName}'");
        var optimizer = new OptimizerSettings(
            optimizerName switch { "momentum" => OptimizerKind.Momentum, "adam" => OptimizerKind.Adam, _ => OptimizerKind.Sgd },
            Momentum: flags.Double("momentum", 0, 1) ?? 0.9,
            Nesterov: flags.Bool("nesterov", false),
            WeightDecay: flags.Double("weight-decay", 0) ?? 0);

        string? runId = flags.String("run-id");
        if (runId is not null && (!RunIdPattern().IsMatch(runId) || runId.Trim('.').Length == 0))
            throw new UsageException($"--run-id may hold only letters, digits, '.', '_' and '-', and not only dots (it names a directory inside --runs-dir), not '{runId}'");

        string dataset = flags.Choice("dataset", "fashion-mnist", "fashion-mnist", "synthetic");
        if (dataset == "synthetic" && flags.Has("data-dir"))
            throw new UsageException("--data-dir applies to --dataset fashion-mnist only; the synthetic data set is generated");

        return new TrainingConfig
        {
            Dataset = dataset,
            DataDirectory = flags.String("data-dir", Core.Data.FashionMnist.DefaultDirectory),
            ValidationSize = flags.Int("validation-size", 0) ?? Core.Data.FashionMnist.DefaultValidationSize,
            Model = model == "mlp" ? ModelSpec.Mlp(hidden ?? []) : ModelSpec.Cnn(batchNorm: model == "cnn-bn"),
            GlobalBatch = globalBatch,
            MicroBatch = flags.Int("micro-batch", 1),
            Workers = engine == Engine.Plain ? 1 : workers,
            Steps = flags.Long("steps", 1),
            Epochs = flags.Double("epochs", 0, minExclusive: true),
            // The update runs in float32: a larger rate is infinite there and would turn every parameter into NaN.
            LearningRate = flags.Double("lr", 0, float.MaxValue, minExclusive: true) ?? 0.1,
            LrScaling = flags.Choice("lr-scaling", "none", "none", "linear", "sqrt") switch
            {
                "linear" => LrScaling.Linear,
                "sqrt" => LrScaling.Sqrt,
                _ => LrScaling.None,
            },
            BaseBatch = flags.Int("base-batch", 1) ?? LearningRateSchedule.DefaultBaseBatch,
            WarmupSteps = flags.Int("warmup-steps", 0) ?? 0,
            Optimizer = optimizer,
            ClipGradNorm = flags.Double("clip-grad-norm", 0) ?? 0,
            MaxBadSteps = flags.Int("max-bad-steps", 1, 1_000_000) ?? 3,
            Seed = flags.Long("seed", long.MinValue) ?? 1,
            Threads = flags.Int("threads", 1, 256),
            Engine = engine,
            RunsDirectory = flags.String("runs-dir", "runs"),
            RunId = runId,
            EvalEvery = flags.Long("eval-every", 0),
            TrainEvalSamples = flags.Int("train-eval-samples", 0) ?? 5000,
            TargetAccuracy = flags.Double("target-accuracy", 0, 1, minExclusive: true),
            Shuffle = flags.Bool("shuffle", true),
            StepDeadlineSeconds = flags.Double("step-deadline", 0, minExclusive: true) ?? 60,
            InitParams = flags.String("init-params"),
            CheckpointEvery = flags.Long("checkpoint-every", 0) ?? 0,
            CheckpointDirectory = flags.String("checkpoint-dir", "checkpoints"),
            Resume = flags.Has("resume"),
            ExportParams = flags.String("export-params"),
            TensorBoardDirectory = flags.String("tensorboard"),
            Split = flags.Choice("split", "declared", "declared", "capacity") == "capacity" ? ShareSplit.Capacity : ShareSplit.Declared,
            TransferPrecision = flags.Choice("transfer-precision", "fp32", "fp32", "bf16") == "bf16" ? TransferPrecision.Bf16 : TransferPrecision.Fp32,
        };
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex RunIdPattern();
}
