using System.Globalization;
using System.Text;

namespace BatchCluster.Analysis.Summary;

/// <summary>
/// The summary table's columns, written as CSV (machine-readable, full precision) and Markdown
/// (for reading: percentages and rounded figures). One definition, so the two cannot disagree.
/// </summary>
public static class SummaryTable
{
    private sealed record Column(string Name, Func<RunRow, string> Csv, Func<RunRow, string> Markdown);

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    private static string Number(double value) => double.IsFinite(value) ? value.ToString("R", Invariant) : "";
    private static string Optional(long? value) => value?.ToString(Invariant) ?? "";

    private static readonly Column[] Columns =
    [
        new("run_id", r => r.RunId, r => r.RunId),
        new("status", r => r.Status.ToString().ToLowerInvariant(), r => r.Status.ToString().ToLowerInvariant()),
        new("engine", r => r.Engine, r => r.Engine),
        new("model", r => r.Model, r => r.Model),
        new("workers", r => r.Workers.ToString(Invariant), r => r.Workers.ToString(Invariant)),
        new("global_batch", r => r.BatchLabel, r => r.BatchLabel),
        new("micro_batch", r => r.MicroBatch?.ToString(Invariant) ?? "", r => r.MicroBatch?.ToString(Invariant) ?? "share"),
        new("bn_batch", r => r.BnBatch?.ToString(Invariant) ?? "", r => r.BnBatch?.ToString(Invariant) ?? "–"),
        new("lr_scaling", r => r.LrScaling, r => r.LrScaling),
        new("peak_lr", r => Number(r.PeakLearningRate), r => Show.Number(r.PeakLearningRate, "G4")),
        new("steps", r => r.Steps.ToString(Invariant), r => r.Steps.ToString(Invariant)),
        new("epochs", r => Number(r.Epochs), r => Show.Number(r.Epochs, "F2")),
        new("final_val_accuracy", r => Number(r.FinalValAccuracy), r => Show.Percent(r.FinalValAccuracy)),
        new("best_val_accuracy", r => Number(r.BestValAccuracy), r => Show.Percent(r.BestValAccuracy)),
        new("test_accuracy", r => Number(r.TestAccuracy), r => Show.Percent(r.TestAccuracy)),
        new("train_accuracy", r => Number(r.TrainAccuracy), r => Show.Percent(r.TrainAccuracy)),
        new("generalization_gap", r => Number(r.GeneralizationGap), r => Show.Number(100 * r.GeneralizationGap, "F2") + " pt"),
        new("steps_to_target", r => Optional(r.StepsToTarget), r => r.StepsToTarget?.ToString(Invariant) ?? "–"),
        new("samples_to_target", r => Optional(r.SamplesToTarget), r => r.SamplesToTarget?.ToString(Invariant) ?? "–"),
        new("seconds_to_target", r => Number(r.SecondsToTarget), r => Show.Number(r.SecondsToTarget, "F1")),
        new("samples_per_s", r => Number(r.SamplesPerSecond), r => Show.Number(r.SamplesPerSecond, "F0")),
        new("median_step_ms", r => Number(r.MedianStepMs), r => Show.Number(r.MedianStepMs, "F2")),
        new("median_compute_ms", r => Number(r.MedianComputeMs), r => Show.Number(r.MedianComputeMs, "F2")),
        new("median_transfer_ms", r => Number(r.MedianTransferMs), r => Show.Number(r.MedianTransferMs, "F2")),
        new("bytes_per_sample", r => Number(r.BytesPerSample), r => Show.Number(r.BytesPerSample, "F0")),
        new("handed_over_per_sample", r => Number(r.HandedOverPerSample), r => Show.Number(r.HandedOverPerSample, "F0")),
        new("median_shares", r => r.MedianShares, r => r.MedianShares.Length == 0 ? "–" : r.MedianShares),
        new("peak_memory_mb", r => Number(r.PeakMemoryMb), r => Show.Number(r.PeakMemoryMb, "F0")),
        new("final_b_simple", r => Number(r.FinalBSimple), r => Show.Number(r.FinalBSimple, "F0")),
        new("bad_lines", r => r.BadLines.ToString(Invariant), r => r.BadLines.ToString(Invariant)),
        new("seed", r => r.Seed?.ToString(Invariant) ?? "", r => r.Seed?.ToString(Invariant) ?? "–"),
        new("segments", r => r.Segments.ToString(Invariant), r => r.Segments.ToString(Invariant)),
    ];

    public static IReadOnlyList<string> ColumnNames => Columns.Select(c => c.Name).ToList();

    /// <summary>Rows in a stable order: by series, then global batch, then run id.</summary>
    public static IReadOnlyList<RunRow> Ordered(IEnumerable<RunRow> rows) =>
        rows.OrderBy(r => r.SeriesKey, StringComparer.Ordinal).ThenBy(r => r.GlobalBatch).ThenBy(r => r.RunId, StringComparer.Ordinal).ToList();

    public static string Csv(IEnumerable<RunRow> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(string.Join(',', Columns.Select(c => c.Name)));
        foreach (var row in Ordered(rows))
            text.AppendLine(string.Join(',', Columns.Select(c => CsvField(c.Csv(row)))));
        return text.ToString();
    }

    public static string Markdown(IEnumerable<RunRow> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("| " + string.Join(" | ", Columns.Select(c => c.Name)) + " |");
        text.AppendLine("|" + string.Concat(Columns.Select(_ => " --- |")));
        foreach (var row in Ordered(rows))
            text.AppendLine("| " + string.Join(" | ", Columns.Select(c => c.Markdown(row).Replace("|", "\\|"))) + " |");
        return text.ToString();
    }

    /// <summary>The cells as the Markdown table shows them, for the HTML report.</summary>
    public static IEnumerable<IReadOnlyList<string>> DisplayCells(IEnumerable<RunRow> rows) =>
        Ordered(rows).Select(row => (IReadOnlyList<string>)Columns.Select(c => c.Markdown(row)).ToList());

    private static string CsvField(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + value.Replace("\"", "\"\"") + "\"" : value;
}
