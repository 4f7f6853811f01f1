using System.Globalization;
using System.Text;
using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;
using static BatchCluster.Analysis.Report.HtmlPage;

namespace BatchCluster.Analysis.Report;

/// <summary>
/// A run's page, read like a training run's page in TensorBoard or W&amp;B: the numbers that say how
/// it went, its curves (accuracy with the gap, loss over steps and over wall time, throughput with
/// its events, step time split, learning rate, B_simple), its workers and its events. Captions state
/// what each plot shows in numbers, computed from the log.
/// </summary>
public static class RunPage
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <param name="backLink">The experiment page this run belongs to, or null when the report is this one run.</param>
    public static string Render(RunRow row, RunLog log, IReadOnlyList<(string File, string Caption)> plots, AnalysisInputs inputs, string? backLink)
    {
        var html = Start($"Run {row.RunId}");
        if (backLink is not null) html.AppendLine($"<p><a href=\"{E(backLink)}\">← the experiment</a></p>");
        html.AppendLine($"<h1>Run {E(row.RunId)}</h1>");
        string status = row.Status.ToString().ToLowerInvariant();
        html.AppendLine($"<p class=\"lead\">{E(row.Label)} · <span class=\"{status}\">{E(status)}</span>"
            + (log.FailureMessage is string failure ? $": {E(failure)}" : "")
            + $" · generated {E(inputs.GeneratedAt.ToString("u"))} from {E(string.Join(", ", log.Segments.Select(s => s.Path).DefaultIfEmpty(log.Path)))}</p>");
        Facts(html, row, log, inputs);
        Figures(html, plots);
        Workers(html, log);
        Events(html, log);
        return Finish(html);
    }


    /// <summary>The run's numbers, four pairs to a row.</summary>
    private static void Facts(StringBuilder html, RunRow row, RunLog log, AnalysisInputs inputs)
    {
        var best = log.Validations.OrderByDescending(v => v.Accuracy).ThenBy(v => v.Step).FirstOrDefault();
        var pairs = new List<(string, string)>
        {
            ("final validation accuracy", Show.Percent(row.FinalValAccuracy)),
            ("best validation accuracy", best is null ? "–" : $"{Show.Percent(best.Accuracy)} (step {best.Step:N0})"),
            ("test accuracy", Show.Percent(row.TestAccuracy)),
            ("training subset · gap", $"{Show.Percent(row.TrainAccuracy)} · {Show.Number(100 * row.GeneralizationGap, "F2")} pt"),
            (inputs.TargetAccuracy is double t ? $"time to {100 * t:F1} %" : "time to target",
                inputs.TargetAccuracy is null ? "no target given" : double.IsFinite(row.SecondsToTarget) ? $"{row.SecondsToTarget:F1} s ({row.StepsToTarget:N0} steps)" : "not reached"),
            ("samples/s (evaluation excluded)", Show.Number(row.SamplesPerSecond, "N0")),
            ("median step", $"{Show.Number(row.MedianStepMs, "F2")} ms (compute {Show.Number(row.MedianComputeMs, "F2")}, transfer {Show.Number(row.MedianTransferMs, "F2")})"),
            ("peak memory", $"{Show.Number(row.PeakMemoryMb, "F0")} MiB"),
            ("model · engine", $"{row.Model} · {row.Engine}, {row.Workers} worker{(row.Workers == 1 ? "" : "s")}"),
            ("global batch · micro-batch", $"{row.GlobalBatch} · {(row.MicroBatch is int m ? m.ToString(Invariant) : "the share")}"
                                           + (row.BnBatch is int bn ? $" · batch norm over ghost batches of {bn.ToString(Invariant)}" : "")),
            ("steps · epochs", $"{row.Steps:N0} of {log.Info?.TotalSteps.ToString("N0", Invariant) ?? "?"} · {Show.Number(row.Epochs, "F2")}"),
            ("peak learning rate · scaling", $"{Show.Number(row.PeakLearningRate, "G4")} · {row.LrScaling}"),
            ("B_simple (last epoch)", Show.Number(row.FinalBSimple, "N0")),
            ("bytes across processes per sample", Show.Number(row.BytesPerSample, "N0")),
            ("bytes handed over in-process per sample", row.HandedOverPerSample > 0
                ? $"{Show.Number(row.HandedOverPerSample, "N0")} (by reference: nothing copied or sent)"
                : "none"),
            ("typical shares (samples)", row.MedianShares.Length == 0 ? "–" : row.MedianShares),
            ("processes (resumed runs)", row.Segments == 1 ? "1" : $"{row.Segments}: {string.Join(" → ", log.Segments.Select(s => s.RunId))}"),
            ("unreadable log lines", row.BadLines.ToString(Invariant)),
        };
        html.AppendLine("<table class=\"facts\"><tbody>");
        foreach (var chunk in pairs.Chunk(4))
            html.Append("<tr>").Append(string.Concat(chunk.Select(p => $"<th>{E(p.Item1)}</th><td>{E(p.Item2)}</td>"))).AppendLine("</tr>");
        html.AppendLine("</tbody></table>");
    }

    private static void Workers(StringBuilder html, RunLog log)
    {
        var workers = WorkerSummary.Of(log);
        html.AppendLine("<h2>Workers</h2>");
        if (workers.Count == 0)
        {
            html.AppendLine("<p>The log names no worker (the plain reference loop, or a log before any worker joined).</p>");
            return;
        }
        Table(html, ["worker", "address", "device", "threads", "transport", "times joined", "measured samples/s at joining", "steps with a share",
                "median share (samples)", "median share samples/s", "left"],
            workers.Select(w => new[]
            {
                w.WorkerId, w.Address, w.Device, w.Threads.ToString(Invariant), w.Transport, w.Joins.ToString(Invariant), Show.Number(w.MeasuredSamplesPerSecond, "N0"),
                w.StepsWithShare.ToString("N0", Invariant), Show.Number(w.MedianShare, "0.#"), Show.Number(w.MedianShareSamplesPerSecond, "N0"),
                w.LeftBecause.Count == 0 ? "" : string.Join("; ", w.LeftBecause),
            }));
        if (log.Steps.Count > 0 && log.Steps.All(s => s.ShareWorkers is null))
            html.AppendLine("<p>This log predates schema 7: it does not say which worker computed which share.</p>");
    }

    /// <summary>The events of the time line, in order, with their training time; folded when there are many.</summary>
    private static void Events(StringBuilder html, RunLog log)
    {
        html.AppendLine("<h2>Events</h2>");
        var marks = log.Marks.OrderBy(m => m.At).ToList();
        if (marks.Count == 0)
        {
            html.AppendLine("<p>None logged.</p>");
            return;
        }
        var counts = marks.GroupBy(m => m.Kind).Select(g => $"{g.Count()} {g.Key}");
        html.AppendLine($"<p>{E(string.Join(", ", counts))}. Times are training time from the first step (negative: before it).</p>");
        const int Shown = 200;
        bool fold = marks.Count > 15;
        if (fold) html.AppendLine($"<details><summary>All {marks.Count} events{(marks.Count > Shown ? $" (the first {Shown} shown)" : "")}</summary>");
        var clock = TrainingClock.Of(log);
        Table(html, ["time (s)", "step", "event", "detail"], marks.Take(Shown).Select(m => new[]
        {
            Show.Number(clock.Seconds(m.At), "F2"), m.Step?.ToString("N0", Invariant) ?? "", m.Kind, m.Detail,
        }));
        if (fold) html.AppendLine("</details>");
    }
}
