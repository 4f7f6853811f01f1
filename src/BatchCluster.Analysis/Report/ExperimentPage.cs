using System.Globalization;
using BatchCluster.Analysis.Summary;
using static BatchCluster.Analysis.Report.HtmlPage;

namespace BatchCluster.Analysis.Report;

/// <summary>
/// The page of an experiment (several runs): its findings first, in numbers; then the plots, each
/// with a caption that says what it shows; then the table by configuration; the runs last, folded,
/// each linking to its run page.
/// </summary>
public static class ExperimentPage
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <param name="runPages">Each run's page, relative to this one, by run id.</param>
    public static string Render(IReadOnlyList<RunRow> rows, IReadOnlyList<string> findings, IReadOnlyList<(string File, string Caption)> plots,
        IReadOnlyDictionary<string, string> runPages, AnalysisInputs inputs)
    {
        var html = Start("BatchCluster experiment report");
        html.AppendLine("<h1>BatchCluster experiment report</h1>");
        int series = rows.Select(r => r.SeriesKey).Distinct().Count();
        html.AppendLine($"<p class=\"lead\">{rows.Count} runs in {series} series from {inputs.LogFiles} event logs; "
            + $"target accuracy {(inputs.TargetAccuracy is double t ? E($"{100 * t:F1} %") : "none given")}; "
            + $"unreadable lines skipped: {inputs.BadLines}; generated {E(inputs.GeneratedAt.ToString("u"))}.</p>");
        if (findings.Count > 0)
        {
            html.AppendLine("<h2>Findings</h2><p class=\"lead\">Computed from the logs; every figure is the median over the runs of a configuration (series and global batch).</p><ul class=\"findings\">");
            foreach (string finding in findings) html.AppendLine($"<li>{E(finding)}</li>");
            html.AppendLine("</ul>");
        }
        html.AppendLine("<h2>Plots</h2>");
        Figures(html, plots);
        if (GroupTable.Groups(rows).Count < rows.Count)
        {
            html.AppendLine("<h2>By configuration (mean ± standard deviation over runs that differ only in seed)</h2>");
            MarkdownTable(html, GroupTable.Markdown(rows));
        }
        html.AppendLine("<h2>Runs</h2>");
        html.AppendLine($"<details><summary>All {rows.Count} runs, each with its page (every column: summary.csv)</summary>");
        RawTable(html, ["series", "run", "status", "final val", "best val", "test", "gap (pt)", "steps to target", "s to target", "samples/s", "median step (ms)", "processes"],
            SummaryTable.Ordered(rows).Select(r => new[]
            {
                E(r.SeriesKey),
                runPages.TryGetValue(r.RunId, out var page) ? $"<a href=\"{E(page)}\" title=\"{E(r.RunId)}\">{E(r.ShortLabel)}</a>" : E(r.ShortLabel),
                E(r.Status.ToString().ToLowerInvariant()), Show.Percent(r.FinalValAccuracy), Show.Percent(r.BestValAccuracy), Show.Percent(r.TestAccuracy),
                Show.Number(100 * r.GeneralizationGap, "F2"), r.StepsToTarget?.ToString("N0", Invariant) ?? "–", Show.Number(r.SecondsToTarget, "F1"),
                Show.Number(r.SamplesPerSecond, "N0"), Show.Number(r.MedianStepMs, "F2"), r.Segments.ToString(Invariant),
            }));
        html.AppendLine("</details>");
        html.AppendLine("<p>Accuracies in eval mode; train accuracy on the fixed training subset; generalization gap = train − validation "
            + "accuracy; time to target is training time from the first step to the first validation at or above the target (evaluations "
            + "included); samples/s excludes evaluation. Column meanings: docs/log-schema.md and docs/experiments.md.</p>");
        return Finish(html);
    }

}
