using System.Net;
using System.Text;

namespace BatchCluster.Analysis.Report;

/// <summary>
/// What the report's pages share: the head and style (no scripts, no style sheets, no network: a
/// page needs nothing but the PNGs beside it), escaping, tables, and figures in a two-column grid
/// wide enough for a 1400-pixel screen.
/// </summary>
public static class HtmlPage
{
    public static StringBuilder Start(string title)
    {
        var html = new StringBuilder();
        html.AppendLine("<!DOCTYPE html>");
        html.AppendLine($"<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{E(title)}</title>");
        html.AppendLine("<style>body{font-family:sans-serif;margin:1.5em 2em;max-width:1400px;color:#222}"
            + "h1{margin:0 0 .2em;font-size:1.6em}h2{margin:1.2em 0 .4em;font-size:1.25em}.lead{color:#555;margin:.2em 0 1em}"
            + "table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}"
            + "th{background:#eee}td:first-child,th:first-child{text-align:left}"
            + ".facts td,.facts th{font-size:13px;text-align:left}.facts th{background:#f4f4f4;font-weight:normal;color:#555}"
            + ".grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}figure{margin:0}"
            + "img{width:100%;border:1px solid #ddd}figcaption{color:#444;font-size:13px;margin-top:.3em}"
            + "ul.findings li{margin:.3em 0}details summary{cursor:pointer;margin:.5em 0}"
            + ".failed{color:#b00}.interrupted,.incomplete{color:#a60}.completed{color:#070}</style></head><body>");
        return html;
    }

    public static string Finish(StringBuilder html) => html.AppendLine("</body></html>").ToString();

    public static string E(string text) => WebUtility.HtmlEncode(text);

    /// <summary>Figures two to a row; each caption under its plot.</summary>
    public static void Figures(StringBuilder html, IEnumerable<(string File, string Caption)> plots)
    {
        html.AppendLine("<div class=\"grid\">");
        foreach (var (file, caption) in plots)
            html.AppendLine($"<figure><img src=\"{E(file)}\" alt=\"{E(caption)}\"><figcaption>{E(caption)}</figcaption></figure>");
        html.AppendLine("</div>");
    }

    /// <summary>A table of plain cells (escaped here), optionally with a class.</summary>
    public static void Table(StringBuilder html, IEnumerable<string> header, IEnumerable<IEnumerable<string>> rows, string? cssClass = null) =>
        RawTable(html, header.Select(E), rows.Select(r => r.Select(E)), cssClass);

    /// <summary>A table whose cells are HTML already (links).</summary>
    public static void RawTable(StringBuilder html, IEnumerable<string> header, IEnumerable<IEnumerable<string>> rows, string? cssClass = null)
    {
        html.Append(cssClass is null ? "<table>" : $"<table class=\"{cssClass}\">");
        html.Append("<thead><tr>").Append(string.Concat(header.Select(h => $"<th>{h}</th>"))).AppendLine("</tr></thead><tbody>");
        foreach (var row in rows) html.Append("<tr>").Append(string.Concat(row.Select(c => $"<td>{c}</td>"))).AppendLine("</tr>");
        html.AppendLine("</tbody></table>");
    }

    /// <summary>The grouped table is built as Markdown (summary_by_config.md); the page shows the same cells.</summary>
    public static void MarkdownTable(StringBuilder html, string markdown)
    {
        var lines = markdown.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        static string[] Cells(string line) => line.Trim('|').Split(" | ").Select(c => c.Trim()).ToArray();
        Table(html, Cells(lines[0]), lines.Skip(2).Select(Cells));
    }
}
