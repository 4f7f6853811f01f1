using System.Diagnostics;
using System.Text.Json;
using BatchCluster.Analysis;
using BatchCluster.Analysis.Logs;
using BatchCluster.Cli.Options;
using BatchCluster.Cli.Output;
using BatchCluster.Core.Data;
using BatchCluster.Core.Experiments;
using BatchCluster.Core.Schedules;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster sweep</c>: a grid of training runs over global batch × workers × micro-batch ×
/// LR scaling, one event log each under --runs-dir, then the analysis report. Resumable: a run whose
/// log ends with RunCompleted is skipped; a run whose log does not (killed, failed) is moved aside
/// to &lt;runs-dir&gt;/.superseded/ and trained again.
/// </summary>
public static class SweepCommand
{
    private static readonly string[] ListFlags = ["global-batch", "workers", "micro-batch", "lr-scaling"];
    private static readonly string[] OwnFlags = ["samples", "evals-per-epoch", "report", "warmup-epochs"];
    private static readonly string[] Refused = ["run-id", "resume", "checkpoint-every", "checkpoint-dir", "export-params"];
    public const string SupersededDirectory = ".superseded";

    public const string Help = """
        batchcluster sweep [flags]     every combination of the lists, one run each, then the analysis report
          --global-batch 32,64,…         global batches (default 128)
          --workers 1,4                  worker counts (default 4)
          --micro-batch 16,64            micro-batches (default: the whole share)
          --lr-scaling none,linear,sqrt  LR scaling rules (default none); --lr is the rate at --base-batch
          --epochs E | --samples N | --steps S   budget of every run (default 1 epoch); --samples gives each
                                         run ⌈N / global batch⌉ steps
          --evals-per-epoch K            validations per epoch in every run (default 1)
          --warmup-epochs W              linear LR warm-up over W epochs in every run (instead of --warmup-steps)
          --target-accuracy A            stop each run once validation reaches A; the report gives steps to A
          --runs-dir DIR                 where the runs' directories go (default runs); re-running the same
                                         sweep skips completed runs
          --report DIR                   where the analysis of every run under --runs-dir goes (default <runs-dir>/report)
          Every other 'train' flag (--model, --lr, --optimizer, --warmup-steps, --seed, …) applies to every run.
        """;

    public static async Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        var flags = new FlagSet(args, TrainOptions.Flags.Concat(OwnFlags).ToArray(), "sweep");
        foreach (string name in Refused.Where(flags.Has))
            throw new UsageException($"--{name} does not apply to a sweep: it names its runs itself and resumes by skipping completed runs");
        if (flags.Has("samples") && (flags.Has("steps") || flags.Has("epochs")))
            throw new UsageException("give one budget: --epochs, --samples or --steps");
        var baseConfig = TrainOptions.Parse(flags.Except(ListFlags.Concat(OwnFlags)));
        var budget = flags.Long("samples", 1) is long samples ? new RunBudget.Samples(samples)
            : baseConfig.Steps is long steps ? new RunBudget.Steps(steps)
            : (RunBudget)new RunBudget.Epochs(baseConfig.Epochs ?? 1);
        int[] batches = flags.IntList("global-batch", 1) ?? [baseConfig.GlobalBatch];
        int[] workers = flags.IntList("workers", 1) ?? [baseConfig.Workers];
        int?[] micro = flags.IntList("micro-batch", 1)?.Select(m => (int?)m).ToArray() ?? [null];
        var scalings = ParseScalings(flags.String("lr-scaling") ?? "none");
        int? evalsPerEpoch = flags.Int("evals-per-epoch", 1);
        double? warmupEpochs = flags.Double("warmup-epochs", 0);
        if (warmupEpochs is not null && flags.Has("warmup-steps"))
            throw new UsageException("give --warmup-epochs or --warmup-steps, not both");
        string reportDir = flags.String("report", Path.Combine(baseConfig.RunsDirectory, "report"));

        int trainSamples = DataSource.Load(baseConfig.Dataset, baseConfig.DataDirectory, baseConfig.ValidationSize, baseConfig.Seed).Train.Count;
        var points = SweepGrid.Expand(baseConfig, batches, workers, micro, scalings, budget, trainSamples, evalsPerEpoch, out var impossible, warmupEpochs);
        foreach (string note in impossible) Console.Out.WriteLine($"sweep: leaving out {note}");
        if (points.Count == 0) throw new UsageException("the sweep has no runnable combination; see the lines above");

        // The planned length of a run (the sampler drops each epoch's last partial batch).
        long PlannedSteps(TrainingConfig c) => c.TotalSteps(trainSamples / c.GlobalBatch);
        var completed = points.Where(p => IsCompleted(p.Config)).Select(p => p.RunId).ToHashSet();
        long totalSteps = points.Where(p => !completed.Contains(p.RunId)).Sum(p => PlannedSteps(p.Config));
        var progress = SweepProgress.ForConsole(points.Count, totalSteps);
        progress.Line($"sweep: {points.Count} runs ({completed.Count} already completed) under {Path.GetFullPath(baseConfig.RunsDirectory)}");
        int trained = 0, failed = 0;
        for (int i = 0; i < points.Count; i++)
        {
            var (runId, config) = points[i];
            if (completed.Contains(runId))
            {
                progress.RunSkipped(i + 1, runId, "already completed");
                continue;
            }
            cancellation.ThrowIfCancellationRequested();
            MoveAsideUnfinished(config);
            long planned = PlannedSteps(config);
            progress.RunStarting(i + 1, runId, config);
            var clock = Stopwatch.StartNew();
            try
            {
                // A run retrained after a crash starts afresh; its old checkpoints are not a reason to refuse.
                var host = RunHost.Prepare(config, refuseExistingCheckpoints: false);
                var result = await host.ExecuteAsync(config.Engine.ToString().ToLowerInvariant(), config.Workers,
                    (events, onStep) => Engines.RunAsync(config, host.Data, host.Initial, events, host.LogPath, onStep, cancellation),
                    console: null, progress.Step);
                progress.RunEnded(i + 1, runId, result.Summary, clock.Elapsed, planned);
                trained++;
            }
            catch (Exception e) when (e is not (OperationCanceledException or RunInterruptedException))
            {
                // A stopped sweep (SIGTERM/SIGINT) ends here; running it again retrains the interrupted run.
                progress.RunFailed(i + 1, runId, e, planned);
                failed++;
            }
        }

        var report = AnalysisReport.Write([baseConfig.RunsDirectory], reportDir, baseConfig.TargetAccuracy);
        progress.Line($"sweep: report with {report.Rows.Count} runs in {Path.GetFullPath(reportDir)} (index.html, summary.md, summary.csv)");
        Console.Out.WriteLine(JsonSerializer.Serialize(new
        {
            runs = points.Count, trained, skipped = completed.Count, failed,
            runs_dir = Path.GetFullPath(baseConfig.RunsDirectory), report = Path.GetFullPath(reportDir),
        }));
        if (failed > 0)
            throw new CommandFailedException($"{failed} of {points.Count} runs failed (their event logs end with RunFailed); run the same sweep again to retry them");
        return 0;
    }

    private static LrScaling[] ParseScalings(string text) => text.Split(',', StringSplitOptions.TrimEntries).Select(name => name switch
    {
        "none" => LrScaling.None,
        "linear" => LrScaling.Linear,
        "sqrt" => LrScaling.Sqrt,
        _ => throw new UsageException($"--lr-scaling must be a comma-separated list of none|linear|sqrt, not '{text}'"),
    }).Distinct().ToArray();

    private static string LogPathOf(TrainingConfig config) => Path.Combine(config.RunsDirectory, config.RunId!, RunLogging.EventLogFileName);

    private static bool IsCompleted(TrainingConfig config) =>
        File.Exists(LogPathOf(config)) && EventLogReader.Read(LogPathOf(config)).Status == RunStatus.Completed;

    /// <summary>An earlier attempt that did not complete keeps its log, out of the way of the new attempt and of the report.</summary>
    private static void MoveAsideUnfinished(TrainingConfig config)
    {
        string directory = Path.Combine(config.RunsDirectory, config.RunId!);
        if (!Directory.Exists(directory)) return;
        string aside = Path.Combine(config.RunsDirectory, SupersededDirectory, $"{config.RunId}-{DateTime.UtcNow:yyyyMMdd-HHmmss-fff}");
        Directory.CreateDirectory(Path.GetDirectoryName(aside)!);
        Directory.Move(directory, aside);
    }
}
