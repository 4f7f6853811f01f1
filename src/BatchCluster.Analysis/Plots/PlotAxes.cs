using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace BatchCluster.Analysis.Plots;

/// <summary>
/// Logarithmic axes for ScottPlot (which plots linear coordinates): data go in as log values and
/// the ticks are labelled with the original numbers.
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
                ticks.AddMajor(Math.Log10(value), value.ToString("0.###", CultureInfo.InvariantCulture));
            }
        }
        axis.TickGenerator = ticks;
    }
}
