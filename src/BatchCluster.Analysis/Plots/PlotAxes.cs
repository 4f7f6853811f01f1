using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace BatchCluster.Analysis.Plots;

/// <summary>
/// Axes people can read: logarithmic axes for ScottPlot (which plots linear coordinates: data go in
/// as log values and the ticks are labelled with the original numbers), and linear value axes that
/// never zoom into a rounding error and write thousands as "k".
/// </summary>
public static class PlotAxes
{
    /// <summary>log2 coordinates, labelled at every power of two in [min, max] (and at min and max).</summary>
    public static void Log2(IAxis axis, double min, double max)
    {
        var ticks = new NumericManual();
        int lo = (int)Math.Floor(Math.Log2(min)), hi = (int)Math.Ceiling(Math.Log2(max));
        for (int k = lo; k <= hi; k++) ticks.AddMajor(k, Math.Pow(2, k).ToString("0.###", CultureInfo.InvariantCulture));
        axis.TickGenerator = ticks;
    }

    /// <summary>log10 coordinates, labelled at 1, 2 and 5 times every power of ten in range.</summary>
    public static void Log10(IAxis axis, double min, double max)
    {
        var ticks = new NumericManual();
        int lo = (int)Math.Floor(Math.Log10(min)), hi = (int)Math.Ceiling(Math.Log10(max));
        for (int k = lo; k <= hi; k++)
        {
            foreach (double m in (double[])[1, 2, 5])
            {
                double value = m * Math.Pow(10, k);
                if (value < min / 2 || value > max * 2) continue;
                ticks.AddMajor(Math.Log10(value), Thousands(value));
            }
        }
        axis.TickGenerator = ticks;
    }

    /// <summary>
    /// The vertical axis for <paramref name="values"/>: when they differ by less than 1 % of their
    /// size (one run, or runs that agree), ScottPlot would spread that difference over the whole
    /// height (53,155 to 53,157 samples/s); the axis then spans ±10 % around them instead. Values of
    /// 10,000 and more are labelled in thousands ("53.2k").
    /// </summary>
    public static void Readable(Plot plot, IReadOnlyList<double> values)
    {
        var finite = values.Where(double.IsFinite).ToList();
        if (finite.Count == 0) return;
        double min = finite.Min(), max = finite.Max();
        double size = Math.Max(Math.Abs(min), Math.Abs(max));
        if (max - min <= 0.01 * size)
        {
            double half = size > 0 ? 0.1 * size : 1;
            double middle = (min + max) / 2;
            plot.Axes.SetLimitsY(middle - half, middle + half);
        }
        if (size >= 10_000) plot.Axes.Left.TickGenerator = new NumericAutomatic { LabelFormatter = Thousands };
    }

    /// <summary>Whether positive <paramref name="values"/> span a factor of ten or more: then a log axis shows them all.</summary>
    public static bool SpansDecade(IReadOnlyList<double> values) =>
        values.Count > 0 && values.All(v => double.IsFinite(v) && v > 0) && values.Max() >= 10 * values.Min();

    /// <summary>"53,200" → "53.2k"; below 10,000 the number as it is.</summary>
    public static string Thousands(double value) =>
        Math.Abs(value) >= 10_000 ? (value / 1000).ToString("0.#", CultureInfo.InvariantCulture) + "k" : value.ToString("0.###", CultureInfo.InvariantCulture);
}
