using System.Globalization;
using System.Text;

namespace BatchCluster.Analysis.Summary;

/// <summary>
/// Runs that differ only in their seed, summarised together: one row per configuration (series
/// and global batch) with the number of runs and the mean ± sample standard deviation of what a
/// batch-size comparison needs. A single run shows its value with no spread.
/// </summary>
public static class GroupTable
{
    public sealed record Group(string Series, int GlobalBatch, IReadOnlyList<RunRow> Runs)
    {
        public (double Mean, double Sd) Of(Func<RunRow, double> value)
        {
            var values = Runs.Select(value).Where(double.IsFinite).ToList();
            if (values.Count == 0) return (double.NaN, double.NaN);
            double mean = values.Average();
            double sd = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : double.NaN;
            return (mean, sd);
        }
    }

    public static IReadOnlyList<Group> Groups(IEnumerable<RunRow> rows) =>
        rows.GroupBy(r => (r.SeriesKey, r.GlobalBatch))
            .OrderBy(g => g.Key.SeriesKey, StringComparer.Ordinal).ThenBy(g => g.Key.GlobalBatch)
            .Select(g => new Group(g.Key.SeriesKey, g.Key.GlobalBatch, g.ToList())).ToList();

    private static readonly (string Name, Func<RunRow, double> Value, double Scale, string Format)[] Columns =
    [
        ("final val acc %", r => r.FinalValAccuracy, 100, "F2"),
        ("best val acc %", r => r.BestValAccuracy, 100, "F2"),
        ("test acc %", r => r.TestAccuracy, 100, "F2"),
        ("train acc %", r => r.TrainAccuracy, 100, "F2"),
        ("gap pt", r => r.GeneralizationGap, 100, "F2"),
        ("steps to target", r => r.StepsToTarget is long s ? s : double.NaN, 1, "F0"),
        ("seconds to target", r => r.SecondsToTarget, 1, "F1"),
        ("samples/s", r => r.SamplesPerSecond, 1, "F0"),
        ("bytes/sample", r => r.BytesPerSample, 1, "F0"),
        ("peak MiB", r => r.PeakMemoryMb, 1, "F0"),
        ("B_simple (last epoch)", r => r.FinalBSimple, 1, "F0"),
    ];

    public static string Markdown(IEnumerable<RunRow> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("| configuration | global batch | runs | " + string.Join(" | ", Columns.Select(c => c.Name)) + " |");
        text.AppendLine("| --- | ---: | ---: |" + string.Concat(Columns.Select(_ => " ---: |")));
        foreach (var group in Groups(rows))
        {
            var cells = Columns.Select(c => Cell(group, c.Value, c.Scale, c.Format, group.Runs.Count(r => c.Value(r) is var v && double.IsFinite(v))));
            text.AppendLine($"| {group.Series} | {group.Runs[0].BatchLabel} | {group.Runs.Count} | {string.Join(" | ", cells)} |");
        }
        return text.ToString();
    }

    private static string Cell(Group group, Func<RunRow, double> value, double scale, string format, int measured)
    {
        var (mean, sd) = group.Of(value);
        if (!double.IsFinite(mean)) return "–";
        string m = (scale * mean).ToString(format, CultureInfo.InvariantCulture);
        string spread = double.IsFinite(sd) ? " ± " + (scale * sd).ToString(format, CultureInfo.InvariantCulture) : "";
        // Steps and seconds to target: say how many of the runs reached it.
        string reached = measured < group.Runs.Count ? $" ({measured}/{group.Runs.Count})" : "";
        return m + spread + reached;
    }
}
