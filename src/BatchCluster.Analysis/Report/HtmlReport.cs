using System.Net;
using System.Text;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.Analysis.Report;

/// <summary>
/// index.html: one page with the summary table and the plots. Self-contained in the sense that it
/// needs nothing but the PNGs beside it (no scripts, no style sheets, no network).
/// </summary>
public static class HtmlReport
{
    public static string Render(IReadOnlyList<RunRow> rows, IReadOnlyList<(string File, string Caption)> plots, AnalysisInputs inputs)
    {
        var html = new StringBuilder();
        html.AppendLine("<!DOCTYPE html>");
        html.AppendLine("<html lang=\"en\"><head><meta charset=\"utf-8\"><title>BatchCluster experiment report</title>");
        html.AppendLine("<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:12px}"
            + "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}td:first-child{text-align:left}"
            + "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}figcaption{color:#555}</style></head><body>");
        html.AppendLine("<h1>BatchCluster experiment report</h1>");
        html.AppendLine($"<p>{rows.Count} runs from {inputs.LogFiles} event logs; generated {E(inputs.GeneratedAt.ToString("u"))}. "
            + $"Target accuracy: {(inputs.TargetAccuracy is double t ? E($"{100 * t:F1} %") : "none given")}. "
            + $"Unreadable lines skipped: {inputs.BadLines}.</p>");
        var groups = GroupTable.Groups(rows);
        if (groups.Count < rows.Count)
        {
            html.AppendLine("<h2>By configuration (mean ± standard deviation over runs that differ only in seed)</h2>");
            html.AppendLine(MarkdownTableToHtml(GroupTable.Markdown(rows)));
        }
        html.AppendLine("<h2>Runs</h2>");
        html.AppendLine("<table><thead><tr>" + string.Concat(SummaryTable.ColumnNames.Select(c => $"<th>{E(c)}</th>")) + "</tr></thead><tbody>");
        foreach (var cells in SummaryTable.DisplayCells(rows))
            html.AppendLine("<tr>" + string.Concat(cells.Select(c => $"<td>{E(c)}</td>")) + "</tr>");
        html.AppendLine("</tbody></table>");
        html.AppendLine("<p>Accuracies in eval mode; train accuracy on the fixed training subset; generalization gap = train − validation "
            + "accuracy; time to target is wall time from the start to the first validation at or above the target (evaluations included); "
            + "samples/s excludes evaluation. Column meanings: docs/log-schema.md and docs/experiments.md.</p>");
        html.AppendLine("<h2>Plots</h2>");
        foreach (var (file, caption) in plots)
            html.AppendLine($"<figure><img src=\"{E(file)}\" alt=\"{E(caption)}\"><figcaption>{E(caption)}</figcaption></figure>");
        html.AppendLine("</body></html>");
        return html.ToString();
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);

    /// <summary>The grouped table is built as Markdown (summary_by_config.md); the page shows the same cells.</summary>
    private static string MarkdownTableToHtml(string markdown)
    {
        var lines = markdown.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        static string[] Cells(string line) => line.Trim('|').Split(" | ").Select(c => c.Trim()).ToArray();
        var html = new StringBuilder("<table><thead><tr>");
        html.Append(string.Concat(Cells(lines[0]).Select(c => $"<th>{E(c)}</th>"))).Append("</tr></thead><tbody>");
        foreach (string line in lines.Skip(2))
            html.Append("<tr>").Append(string.Concat(Cells(line).Select(c => $"<td>{E(c)}</td>"))).Append("</tr>");
        return html.Append("</tbody></table>").ToString();
    }
}
