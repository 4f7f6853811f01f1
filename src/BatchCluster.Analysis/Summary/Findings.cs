namespace BatchCluster.Analysis.Summary;

/// <summary>
/// What an experiment's runs show, as sentences with the numbers in them, computed from the rows
/// (so from the logs): the report leads with these and puts them under the plots they describe.
/// Every figure is the median over the runs of a configuration (series and global batch).
/// Null or empty where the runs cannot say it (one global batch, no target, nothing reached it).
/// </summary>
public static class Findings
{

    /// <summary>A step count more than this many times the perfect-scaling count (steps ∝ 1/B) has left the line.</summary>
    public const double ScalingSlack = 1.5;

    /// <summary>Throughput growing less than this per doubling of the global batch has reached its knee.</summary>
    public const double KneeGainPerDoubling = 1.10;

    private sealed record Point(string Series, int Batch, int Runs, double Value);

    /// <summary>Medians of <paramref name="value"/> per series and global batch, finite values only, in batch order.</summary>
    private static List<IGrouping<string, Point>> Medians(IEnumerable<RunRow> rows, Func<RunRow, double> value) =>
        rows.Where(r => r.GlobalBatch > 0 && double.IsFinite(value(r)))
            .GroupBy(r => (r.SeriesKey, r.GlobalBatch))
            .Select(g => new Point(g.Key.SeriesKey, g.Key.GlobalBatch, g.Count(), RunRow.Median(g.Select(value))))
            .OrderBy(p => p.Batch).GroupBy(p => p.Series).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();


    /// <summary>The best and the worst final validation accuracy, and where they are.</summary>
    public static string? Accuracy(IReadOnlyList<RunRow> rows)
    {
        var points = Medians(rows, r => r.FinalValAccuracy).SelectMany(g => g).ToList();
        if (points.Count < 2) return null;
        var best = points.MaxBy(p => p.Value)!;
        var worst = points.MinBy(p => p.Value)!;
        return $"Best final validation accuracy {Show.Percent(best.Value)} at B {best.Batch} ({best.Series}); lowest {Show.Percent(worst.Value)} at B {worst.Batch} ({worst.Series}).";
    }

    /// <summary>The configuration that reached the target soonest in wall time, and how many runs never did.</summary>
    public static string? FastestToTarget(IReadOnlyList<RunRow> rows, double? target)
    {
        if (target is not double t) return null;
        var points = Medians(rows, r => r.SecondsToTarget).SelectMany(g => g).ToList();
        int never = rows.Count(r => !double.IsFinite(r.SecondsToTarget));
        string missed = never == 0 ? "every run reached it" : $"{never} of {rows.Count} runs never reached it";
        if (points.Count == 0) return $"No run reached {Show.Percent(t)} validation accuracy.";
        var fastest = points.MinBy(p => p.Value)!;
        return $"Fastest to {Show.Percent(t)}: B {fastest.Batch} ({fastest.Series}) in {Show.Number(fastest.Value, "F1")} s of training; {missed}.";
    }

    /// <summary>
    /// Per series: up to which global batch each larger batch still cuts the steps to target nearly
    /// in proportion (to within <see cref="ScalingSlack"/>× of the previous batch's steps × B_prev/B),
    /// and where returns diminish. Judged batch to batch, not from the smallest batch alone: a noisy or
    /// badly tuned smallest batch (an unscaled lr is tuned for one batch size) would otherwise move the
    /// whole line.
    /// </summary>
    public static IReadOnlyList<string> ScalingLimit(IReadOnlyList<RunRow> rows, double? target)
    {
        if (target is null) return [];
        var sentences = new List<string>();
        foreach (var series in Medians(rows, r => r.StepsToTarget is long s ? s : double.NaN))
        {
            var points = series.ToList();
            if (points.Count < 2) continue;
            int leaves = Enumerable.Range(1, points.Count - 1)
                .FirstOrDefault(i => points[i].Value > ScalingSlack * points[i - 1].Value * points[i - 1].Batch / points[i].Batch, -1);
            if (leaves < 0)
                sentences.Add($"{series.Key}: steps to target fall nearly in proportion to the batch from B {points[0].Batch} up to B {points[^1].Batch} "
                    + $"({Show.Number(points[0].Value)} → {Show.Number(points[^1].Value)} steps).");
            else
            {
                var (before, after) = (points[leaves - 1], points[leaves]);
                string upTo = leaves == 1 ? "" : $"fall nearly in proportion to the batch up to B {before.Batch} ({Show.Number(points[0].Value)} → {Show.Number(before.Value)} steps); ";
                sentences.Add($"{series.Key}: steps to target {upTo}from B {before.Batch} to B {after.Batch} they fall only to "
                    + $"{Show.Number(100 * after.Value / before.Value, "F0")} % ({Show.Number(before.Value)} → {Show.Number(after.Value)}; in proportion: {Show.Number(before.Value * before.Batch / after.Batch)}): diminishing returns.");
            }
        }
        return sentences;
    }

    /// <summary>
    /// Per series: the global batch after which throughput grows by less than
    /// <see cref="KneeGainPerDoubling"/>× per doubling (the hardware's knee), or how much it still grew at the largest.
    /// </summary>
    public static IReadOnlyList<string> ThroughputKnee(IReadOnlyList<RunRow> rows)
    {
        var sentences = new List<string>();
        foreach (var series in Medians(rows, r => r.SamplesPerSecond))
        {
            var points = series.ToList();
            if (points.Count < 2) continue;
            double GainPerDoubling(Point a, Point b) => Math.Pow(b.Value / a.Value, 1 / Math.Log2((double)b.Batch / a.Batch));
            int knee = Enumerable.Range(0, points.Count - 1).FirstOrDefault(i => GainPerDoubling(points[i], points[i + 1]) < KneeGainPerDoubling, -1);
            if (knee < 0)
                sentences.Add($"{series.Key}: throughput still rises at the largest batch ({Show.Number(points[^2].Value)} → {Show.Number(points[^1].Value)} samples/s from B {points[^2].Batch} to {points[^1].Batch}).");
            else if (knee == 0)
                sentences.Add($"{series.Key}: throughput is flat from the smallest batch on ({Show.Number(points[0].Value)} samples/s at B {points[0].Batch}, {Show.Number(points[^1].Value)} at B {points[^1].Batch}).");
            else
                sentences.Add($"{series.Key}: throughput grows {Show.Number(GainPerDoubling(points[0], points[knee]), "F2")}× per doubling up to B {points[knee].Batch} "
                    + $"({Show.Number(points[knee].Value)} samples/s), then less than {Show.Number((KneeGainPerDoubling - 1) * 100, "F0")} % per doubling (knee at B {points[knee].Batch}).");
        }
        return sentences;
    }

    /// <summary>
    /// For runs that all share one global batch (nothing to plot against it): which run was fastest and
    /// which slowest, and the range of their final validation accuracy.
    /// </summary>
    public static IReadOnlyList<string> AmongRuns(IReadOnlyList<RunRow> rows)
    {
        var timed = rows.Where(r => double.IsFinite(r.SamplesPerSecond)).ToList();
        var accurate = rows.Where(r => double.IsFinite(r.FinalValAccuracy)).ToList();
        var sentences = new List<string>();
        if (timed.Count >= 2)
        {
            var fastest = timed.MaxBy(r => r.SamplesPerSecond)!;
            var slowest = timed.MinBy(r => r.SamplesPerSecond)!;
            sentences.Add($"Fastest run {fastest.RunId}: {Show.Number(fastest.SamplesPerSecond)} samples/s; slowest {slowest.RunId}: {Show.Number(slowest.SamplesPerSecond)} "
                + $"({Show.Number(100 * (1 - slowest.SamplesPerSecond / fastest.SamplesPerSecond), "F0")} % slower).");
        }
        if (accurate.Count >= 2)
            sentences.Add($"Final validation accuracy from {Show.Percent(accurate.Min(r => r.FinalValAccuracy))} to {Show.Percent(accurate.Max(r => r.FinalValAccuracy))} over the {accurate.Count} runs.");
        return sentences;
    }

    /// <summary>The range of the generalization gap, and where it is largest.</summary>
    public static string? Gap(IReadOnlyList<RunRow> rows)
    {
        var points = Medians(rows, r => r.GeneralizationGap).SelectMany(g => g).ToList();
        if (points.Count < 2) return null;
        var largest = points.MaxBy(p => p.Value)!;
        var smallest = points.MinBy(p => p.Value)!;
        return $"The generalization gap ranges from {Show.Number(100 * smallest.Value, "F2")} points (B {smallest.Batch}, {smallest.Series}) "
            + $"to {Show.Number(100 * largest.Value, "F2")} points (B {largest.Batch}, {largest.Series}).";
    }
}
