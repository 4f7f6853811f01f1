using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Plots;
using BatchCluster.Analysis.Report;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.Analysis;

/// <summary>Facts about the inputs of a report, shown on its page.</summary>
public sealed record AnalysisInputs(int LogFiles, int BadLines, double? TargetAccuracy, DateTimeOffset GeneratedAt);

/// <summary>Which runs of a report of several get a page: every one, the first (by run id) of each configuration (series and global batch), or none.</summary>
public enum RunPages { All, OnePerConfiguration, None }

/// <summary>What <see cref="AnalysisReport.Write"/> produced.</summary>
/// <param name="EmptyLogs">Event logs that held no run (no RunStarted, no step) and were left out.</param>
/// <param name="RunPages">Run pages written under <see cref="AnalysisReport.RunPagesDirectory"/> (0 for a report of one run, which is its page).</param>
public sealed record AnalysisOutput(IReadOnlyList<RunRow> Rows, IReadOnlyList<string> Files, int BadLines, IReadOnlyList<string> EmptyLogs, int RunPages = 0);

/// <summary>
/// <c>batchcluster analyze</c> as a library call: event logs in; summary.csv, summary.md, the PNG
/// plots and index.html out. Everything it knows comes from the logs (promise 6, docs/architecture.md).
/// </summary>
public static class AnalysisReport
{
    /// <summary>Where each run's page goes in a report of several runs: runs/&lt;run id&gt;/index.html, its plots beside it.</summary>
    public const string RunPagesDirectory = "runs";

    public static AnalysisOutput Write(IEnumerable<string> inputPaths, string outDir, double? targetAccuracy, RunPages runPages = RunPages.All)
    {
        var files = RunLogFinder.Find(inputPaths);
        var read = files.Select(EventLogReader.Read).ToList();
        int badLines = read.Sum(l => l.BadLines);
        // A log with neither RunStarted nor a step (empty, or garbage from the first line) describes no run.
        var logs = RunStitcher.Stitch(read.Where(l => l.Info is not null || l.Steps.Count > 0).ToList());
        var empty = read.Where(l => l.Info is null && l.Steps.Count == 0).Select(l => l.Path).ToList();
        if (logs.Count == 0)
            throw new InvalidDataException($"none of the {files.Count} event logs holds a RunStarted or StepCompleted event; nothing to analyse");
        var runs = logs.Select(log => (Row: RunRow.From(log, targetAccuracy), Log: log)).ToList();
        var rows = runs.Select(r => r.Row).ToList();

        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        void WriteText(string name, string content)
        {
            // Written beside and renamed into place, so a crash never leaves a half-written table.
            string path = Path.Combine(outDir, name), temporary = path + ".tmp";
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(temporary, content);
            File.Move(temporary, path, overwrite: true);
            written.Add(name);
        }
        WriteText("summary.csv", SummaryTable.Csv(rows));
        WriteText("summary.md", SummaryTable.Markdown(rows));
        WriteText("summary_by_config.md", GroupTable.Markdown(rows));
        var inputs = new AnalysisInputs(files.Count, badLines, targetAccuracy, DateTimeOffset.UtcNow);

        if (runs.Count == 1)
        {
            // One run (what scripts/run.sh reports): the report is its run page.
            var plots = RunPagePlots(runs[0].Row, runs[0].Log, outDir);
            written.AddRange(plots.Select(p => p.File));
            WriteText("index.html", RunPage.Render(runs[0].Row, runs[0].Log, plots, inputs, backLink: null));
            return new AnalysisOutput(rows, written, badLines, empty);
        }

        var pages = new Dictionary<string, string>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        var paged = runPages switch
        {
            RunPages.None => [],
            RunPages.OnePerConfiguration => runs.GroupBy(r => (r.Row.SeriesKey, r.Row.GlobalBatch)).Select(g => g.MinBy(r => r.Row.RunId, StringComparer.Ordinal)).ToList(),
            _ => runs,
        };
        foreach (var (row, log) in paged)
        {
            string folder = Path.Combine(RunPagesDirectory, UniqueFolder(row.RunId, used));
            var plots = RunPagePlots(row, log, Path.Combine(outDir, folder));
            written.AddRange(plots.Select(p => Path.Combine(folder, p.File)));
            WriteText(Path.Combine(folder, "index.html"), RunPage.Render(row, log, plots, inputs, backLink: "../../index.html"));
            pages[row.RunId] = $"{RunPagesDirectory}/{Path.GetFileName(folder)}/index.html";
        }
        var (experimentPlots, findings) = ExperimentPlots(runs, rows, targetAccuracy, outDir);
        written.AddRange(experimentPlots.Select(p => p.File));
        WriteText("index.html", ExperimentPage.Render(rows, findings, experimentPlots, pages, inputs));
        return new AnalysisOutput(SummaryTable.Ordered(rows), written, badLines, empty, paged.Count);
    }

    /// <summary>A run page's plots in reading order, each with its caption in the run's numbers.</summary>
    private static List<(string File, string Caption)> RunPagePlots(RunRow row, RunLog log, string dir)
    {
        Directory.CreateDirectory(dir);
        var run = new[] { (row, log) };
        var plots = new List<(string File, string Caption)>
        {
            (ReportPlots.AccuracyVsStep(run, dir), RunCaptions.Accuracy(row, log)),
            (ReportPlots.LossVsStep(run, dir), RunCaptions.LossVsStep(log)),
        };
        if (RunTimePlots.ThroughputOverTime(row, log, dir) is { } throughput) plots.Add((throughput, RunCaptions.ThroughputOverTime(log)));
        if (ReportPlots.StepTimeSplit(run, dir) is { } split) plots.Add((split, RunCaptions.StepTimeSplit(log)));
        if (RunTimePlots.LossVsTime(row, log, dir) is { } lossTime) plots.Add((lossTime, RunCaptions.LossVsTime(row, log)));
        plots.Add((ReportPlots.LearningRateVsStep(run, dir), RunCaptions.LearningRate(log)));
        plots.Add((ReportPlots.BSimpleOverTraining(run, dir), RunCaptions.BSimple(row)));
        if (RunTimePlots.BatchSizingOverSteps(row, log, dir) is { } sizing) plots.Add((sizing, RunCaptions.BatchSizing(row, log)));
        return plots;
    }

    /// <summary>The experiment page's plots with captions that state their finding, and the findings the page leads with.</summary>
    private static (List<(string File, string Caption)> Plots, List<string> Findings) ExperimentPlots(
        IReadOnlyList<(RunRow Row, RunLog Log)> runs, IReadOnlyList<RunRow> rows, double? targetAccuracy, string outDir)
    {
        string With(string caption, params string?[] facts) => string.Join(" ", new[] { caption }.Concat(facts.OfType<string>()));
        var findings = new List<string>();
        void Find(string? fact) { if (fact is not null) findings.Add(fact); }
        var plots = new List<(string File, string Caption)>();
        // Against global batch only when there is more than one: a single point per plot says nothing.
        if (rows.Select(r => r.GlobalBatch).Distinct().Count() > 1)
        {
            string? accuracy = Findings.Accuracy(rows), fastest = Findings.FastestToTarget(rows, targetAccuracy), gap = Findings.Gap(rows);
            var scaling = Findings.ScalingLimit(rows, targetAccuracy);
            var knees = Findings.ThroughputKnee(rows);
            Find(accuracy);
            Find(fastest);
            findings.AddRange(scaling);
            findings.AddRange(knees);
            Find(gap);
            plots.Add((ReportPlots.ValidationAccuracyVsBatch(rows, outDir), With("Final validation accuracy per global batch, one series per configuration.", accuracy)));
            if (ReportPlots.StepsToTargetVsBatch(rows, targetAccuracy, outDir) is { } stepsFile)
                plots.Add((stepsFile, With("Steps to the target accuracy, log–log; dashed: perfect scaling (steps ∝ 1/B) from the smallest batch; above it, diminishing returns.",
                    scaling.ToArray())));
            if (ReportPlots.SecondsToTargetVsBatch(rows, targetAccuracy, outDir) is { } secondsFile)
                plots.Add((secondsFile, With("Training time to the target accuracy (evaluations included), log–log: fewer steps at larger batches against the time each step takes.", fastest)));
            plots.Add((ReportPlots.ThroughputVsBatch(rows, outDir), With("Training throughput per global batch: where it stops rising is the hardware's knee.", knees.ToArray())));
            plots.Add((ReportPlots.GapVsBatch(rows, outDir), With("Generalization gap (train − validation accuracy) per global batch.", gap)));
        }
        else
        {
            findings.AddRange(Findings.AmongRuns(rows));
        }
        plots.Add((ReportPlots.AccuracyVsStep(runs, outDir), "Validation accuracy over the run (training subset dashed when few runs); each run's page shows its own."));
        plots.Add((ReportPlots.LossVsStep(runs, outDir), "Training loss against optimizer steps: larger batches take fewer, better-averaged steps per epoch."));
        plots.Add((ReportPlots.LossVsEpoch(runs, outDir), "Training loss against epochs (data seen): the fair comparison at a fixed sample budget."));
        plots.Add((ReportPlots.LearningRateVsStep(runs, outDir), "The learning rate each step applied: warm-up, then the (scaled) peak."));
        plots.Add((ReportPlots.BSimpleOverTraining(runs, outDir), "The gradient noise scale B_simple over training (an estimate of the critical batch size)."));
        return (plots, findings);
    }

    /// <summary>The run id as a folder name (letters, digits, '.', '-', '_'), unique within the report.</summary>
    private static string UniqueFolder(string runId, HashSet<string> used)
    {
        string name = new(runId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '-').ToArray());
        if (name.Length == 0 || name.All(c => c == '.')) name = "run";
        string unique = name;
        for (int k = 2; !used.Add(unique); k++) unique = $"{name}-{k}";
        return unique;
    }
}
