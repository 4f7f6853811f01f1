using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Plots;
using BatchCluster.Analysis.Report;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.Analysis;

/// <summary>Facts about the inputs of a report, shown on its page.</summary>
public sealed record AnalysisInputs(int LogFiles, int BadLines, double? TargetAccuracy, DateTimeOffset GeneratedAt);

/// <summary>What <see cref="AnalysisReport.Write"/> produced.</summary>
/// <param name="EmptyLogs">Event logs that held no run (no RunStarted, no step) and were left out.</param>
public sealed record AnalysisOutput(IReadOnlyList<RunRow> Rows, IReadOnlyList<string> Files, int BadLines, IReadOnlyList<string> EmptyLogs);

/// <summary>
/// <c>batchcluster analyze</c> as a library call: event logs in; summary.csv, summary.md, the PNG
/// plots and index.html out. Everything it knows comes from the logs (promise 6, docs/architecture.md).
/// </summary>
public static class AnalysisReport
{
    public static AnalysisOutput Write(IEnumerable<string> inputPaths, string outDir, double? targetAccuracy)
    {
        var files = RunLogFinder.Find(inputPaths);
        var read = files.Select(EventLogReader.Read).ToList();
        int badLines = read.Sum(l => l.BadLines);
        // A log with neither RunStarted nor a step (empty, or garbage from the first line) describes no run.
        var logs = read.Where(l => l.Info is not null || l.Steps.Count > 0).ToList();
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
            File.WriteAllText(temporary, content);
            File.Move(temporary, path, overwrite: true);
            written.Add(name);
        }
        WriteText("summary.csv", SummaryTable.Csv(rows));
        WriteText("summary.md", SummaryTable.Markdown(rows));
        WriteText("summary_by_config.md", GroupTable.Markdown(rows));

        var plots = new List<(string File, string Caption)>
        {
            (ReportPlots.LossVsStep(runs, outDir), "Training loss against optimizer steps: larger batches take fewer, better-averaged steps per epoch."),
            (ReportPlots.AccuracyVsStep(runs, outDir), "Validation and training-subset accuracy over the run; the space between the two lines is the generalization gap."),
            (ReportPlots.LossVsEpoch(runs, outDir), "Training loss against epochs (data seen): the fair comparison at a fixed sample budget."),
            (ReportPlots.LearningRateVsStep(runs, outDir), "The learning rate each step applied: warm-up, then the (scaled) peak."),
        };
        if (ReportPlots.StepTimeSplit(runs, outDir) is { } splitFile)
            plots.Add((splitFile, "Where the run's step time goes: compute, transfer (tensors and messages), update (averaging and optimizer) and wait, stacked."));
        // Against global batch only when there is more than one: a single point per plot says nothing.
        if (rows.Select(r => r.GlobalBatch).Distinct().Count() > 1)
        {
            plots.Add((ReportPlots.ValidationAccuracyVsBatch(rows, outDir), "Final validation accuracy per global batch, one series per configuration."));
            plots.Add((ReportPlots.ThroughputVsBatch(rows, outDir), "Training throughput per global batch: where it stops rising is the hardware's knee."));
            plots.Add((ReportPlots.GapVsBatch(rows, outDir), "Generalization gap (train − validation accuracy) per global batch."));
            if (ReportPlots.StepsToTargetVsBatch(rows, targetAccuracy, outDir) is { } stepsFile)
                plots.Add((stepsFile, "Steps to the target accuracy, log–log; dashed: perfect scaling (steps ∝ 1/B) from the smallest batch. Above the line is diminishing returns."));
            if (ReportPlots.SecondsToTargetVsBatch(rows, targetAccuracy, outDir) is { } secondsFile)
                plots.Add((secondsFile, "Wall time to the target accuracy (evaluations included), log–log: fewer steps at larger batches against the time each step takes."));
        }
        plots.Add((ReportPlots.BSimpleOverTraining(runs, outDir), "The gradient noise scale B_simple over training (an estimate of the critical batch size)."));
        written.AddRange(plots.Select(p => p.File));

        WriteText("index.html", HtmlReport.Render(rows, plots, new AnalysisInputs(files.Count, badLines, targetAccuracy, DateTimeOffset.UtcNow)));
        return new AnalysisOutput(SummaryTable.Ordered(rows), written, badLines, empty);
    }
}
