using BatchCluster.Analysis.Plots;
using ScottPlot;

namespace BatchCluster.EndToEnd.Tests.Analysis;

public sealed class PlotAxesTests
{
    /// <summary>Two runs 2 samples/s apart must not fill the plot's height with a rounding error: ±10 % around them.</summary>
    [Fact]
    public void Values_that_differ_by_a_rounding_error_get_an_axis_of_ten_percent_either_side()
    {
        var plot = new Plot();
        plot.Add.ScatterPoints(new double[] { 1, 2 }, new double[] { 53_155, 53_157 });
        PlotAxes.Readable(plot, [53_155, 53_157]);
        var limits = plot.Axes.GetLimits();
        Assert.Equal(53_156 - 5_315.7, limits.Bottom, 1);
        Assert.Equal(53_156 + 5_315.7, limits.Top, 1);
    }

    [Fact]
    public void Values_that_really_differ_keep_the_automatic_axis()
    {
        var plot = new Plot();
        plot.Add.ScatterPoints(new double[] { 1, 2 }, new double[] { 80, 90 });
        var before = plot.Axes.GetLimits();
        PlotAxes.Readable(plot, [80, 90]);
        Assert.Equal(before, plot.Axes.GetLimits());
    }

    [Theory]
    [InlineData(53_200, "53.2k")]
    [InlineData(100_000, "100k")]
    [InlineData(9_999, "9999")]
    [InlineData(0.5, "0.5")]
    public void Thousands_are_written_as_k(double value, string label) => Assert.Equal(label, PlotAxes.Thousands(value));
}
