using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using BatchCluster.Analysis;
using BatchCluster.Analysis.Logs;
using BatchCluster.Cli.Options;
using BatchCluster.Cli.Output;
using BatchCluster.Core.BatchSizing;
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
    public const string SupersededDirectory = ".superseded";

    /// <summary>The sweep's own flags; every other 'train' flag applies to every run (its list flags are declared here instead).</summary>
    private sealed class SweepOptions
    {
        public TrainOptions Train { get; } = new(listsElsewhere: true);
        public Option<string[]?> GlobalBatches { get; } = Opt.WordList("global-batch",
            "global batches; auto adds a run that chooses its batch (in --batch-range) [default: 128]",
            w => w == "auto" || int.TryParse(w, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int b) && b >= 1,
            "whole numbers of at least 1 or auto", "B[,B…]");
        public Option<int[]?> Workers { get; } = Opt.IntList("workers", "worker counts [default: 4]", 1, 1024);
        public Option<int[]?> MicroBatches { get; } = Opt.IntList("micro-batch", "micro-batches [default: the whole share]", 1, helpName: "M[,M…]");
        public Option<string?> LrScalings { get; } = Opt.Text("lr-scaling", "LR scaling rules, of none|linear|sqrt|adascale [default: none]; --lr is the rate at --base-batch", "RULE[,RULE…]");
        public Option<long?> Samples { get; } = Opt.Long("samples", "budget of every run in samples: ⌈N / global batch⌉ steps (or --epochs, --steps)", 1);
        public Option<int?> EvalsPerEpoch { get; } = Opt.Int("evals-per-epoch", "validations per epoch in every run [default: 1]", 1, helpName: "K");
        public Option<double?> WarmupEpochs { get; } = Opt.Number("warmup-epochs", "linear LR warm-up over W epochs in every run (instead of --warmup-steps)", 0, helpName: "W");
        public Option<string?> Report { get; } = Opt.Text("report", "where the analysis of every run under --runs-dir goes [default: <runs-dir>/report]", "DIR");

        public IEnumerable<Option> All => new Option[] { GlobalBatches, Workers, MicroBatches, LrScalings, Samples, EvalsPerEpoch, WarmupEpochs, Report }.Concat(Train.All);

        /// <summary>Train flags a sweep refuses: it names its runs itself and resumes by skipping completed runs.</summary>
        public Option[] Refused => [Train.RunId, Train.Resume, Train.CheckpointEvery, Train.CheckpointDir, Train.ExportParams];
    }

    public static Command Create()
    {
        var options = new SweepOptions();
        var command = new Command("sweep", "every combination of the lists (global batch × workers × micro-batch × LR scaling), one run each, then the analysis report; re-running skips completed runs");
        foreach (var option in options.All) command.Options.Add(option);
        command.SetAction((r, cancellation) => RunAsync(options, r, cancellation));
        return command;
    }

    private static async Task<int> RunAsync(SweepOptions options, ParseResult r, CancellationToken cancellation)
    {
        foreach (var refused in options.Refused.Where(o => r.Given(o)))
            throw new UsageException($"{refused.Name} does not apply to a sweep: it names its runs itself and resumes by skipping completed runs");
        if (r.Given(options.Samples) && (r.Given(options.Train.Steps) || r.Given(options.Train.Epochs)))
            throw new UsageException("give one budget: --epochs, --samples or --steps");
        var baseConfig = options.Train.ToConfig(r);
        if (baseConfig.Reduce == ReduceTopology.Ring)
            throw new UsageException("--reduce ring reduces around worker processes; a sweep runs the local simulated cluster in one process (scripts/sweep-hosts.sh sweeps worker nodes on simulated hosts)");
        var budget = r.GetValue(options.Samples) is long samples ? new RunBudget.Samples(samples)
            : baseConfig.Steps is long steps ? new RunBudget.Steps(steps)
            : (RunBudget)new RunBudget.Epochs(baseConfig.Epochs ?? 1);
        string[] batchWords = r.List(options.GlobalBatches) ?? [baseConfig.GlobalBatch.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        int[] batches = batchWords.Where(w => w != "auto").Select(w => int.Parse(w, System.Globalization.CultureInfo.InvariantCulture)).Distinct().ToArray();
        var adaptive = batchWords.Contains("auto") ? baseConfig.Adaptive ?? new AdaptiveBatch(BatchFlags.DefaultMin, BatchFlags.DefaultMax) : null;
        if (adaptive is null && baseConfig.Adaptive is not null)
            throw new UsageException("--batch-range and --adapt-every apply to the sweep's auto run: add auto to --global-batch");
        int[] workers = r.List(options.Workers) ?? [baseConfig.Workers];
        int?[] micro = r.List(options.MicroBatches)?.Select(m => (int?)m).ToArray() ?? [null];
        var scalings = ParseScalings(r.GetValue(options.LrScalings) ?? "none");
        if (scalings.Contains(LrScaling.AdaScale) && baseConfig.Optimizer.Kind == Core.Optimizers.OptimizerKind.Adam)
            throw new UsageException("--lr-scaling adascale is derived for SGD (with or without momentum), not adam, whose steps are normalised already; with --optimizer adam use sqrt or none");
        if (baseConfig.MaxLearningRate is not null && !scalings.Contains(LrScaling.AdaScale))
            throw new UsageException("--max-lr caps AdaScale's gain: add adascale to --lr-scaling (the sweep's other rules take their rates from --lr)");
        int? evalsPerEpoch = r.GetValue(options.EvalsPerEpoch);
        double? warmupEpochs = r.GetValue(options.WarmupEpochs);
        if (warmupEpochs is not null && r.Given(options.Train.WarmupSteps))
            throw new UsageException("give --warmup-epochs or --warmup-steps, not both");
        string reportDir = r.GetValue(options.Report) ?? Path.Combine(baseConfig.RunsDirectory, "report");

        int trainSamples = DataSource.Load(baseConfig.Dataset, baseConfig.DataDirectory, baseConfig.ValidationSize, baseConfig.Seed).Train.Count;
        var points = SweepGrid.Expand(baseConfig with { Adaptive = null }, batches, workers, micro, scalings, budget, trainSamples, evalsPerEpoch,
            out var impossible, warmupEpochs, adaptive);
        foreach (string note in impossible) Console.Out.WriteLine($"sweep: leaving out {note}");
        if (points.Count == 0) throw new UsageException("the sweep has no runnable combination; see the lines above");

        // The planned length of a run (the sampler drops each epoch's last partial batch).
        long PlannedSteps(TrainingConfig c) => c.TotalSteps(trainSamples / c.GlobalBatch); // an adaptive run's: at its first batch
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
        "adascale" => LrScaling.AdaScale,
        _ => throw new UsageException($"--lr-scaling must be a comma-separated list of none|linear|sqrt|adascale, not '{text}'"),
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
