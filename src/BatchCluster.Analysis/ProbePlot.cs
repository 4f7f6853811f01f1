using ScottPlot;

namespace BatchCluster.Analysis;

/// <summary>One measured batch size of a probe: the data a plot and a CSV need.</summary>
public sealed record ProbePoint(int BatchSize, double SamplesPerSecond, double MedianMs);

/// <summary>Throughput against batch size, with the powers of two marked, as a PNG.</summary>
public static class ProbePlot
{
    public static void WritePng(IReadOnlyList<ProbePoint> points, string title, string path)
    {
        var plot = new Plot();
        var sorted = points.OrderBy(p => p.BatchSize).ToList();
        var all = plot.Add.Scatter(sorted.Select(p => (double)p.BatchSize).ToArray(), sorted.Select(p => p.SamplesPerSecond).ToArray());
        all.LegendText = "all batch sizes";
        var powers = sorted.Where(p => IsPowerOfTwo(p.BatchSize)).ToList();
        if (powers.Count > 0)
        {
            var marked = plot.Add.Scatter(powers.Select(p => (double)p.BatchSize).ToArray(), powers.Select(p => p.SamplesPerSecond).ToArray());
            marked.LineWidth = 0;
            marked.MarkerSize = 11;
            marked.LegendText = "powers of two";
        }
        plot.Axes.Bottom.Label.Text = "batch size (samples per forward/backward/update)";
        plot.Axes.Left.Label.Text = "samples/s (median)";
        plot.Axes.Title.Label.Text = title;
        plot.ShowLegend();
        plot.SavePng(path, 900, 520);
    }

    public static bool IsPowerOfTwo(int n) => n > 0 && (n & (n - 1)) == 0;
}
