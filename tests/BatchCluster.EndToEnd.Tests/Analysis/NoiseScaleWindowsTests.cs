using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.EndToEnd.Tests.Analysis;

public sealed class NoiseScaleWindowsTests
{
    private static StepPoint Step(long step, double gradSquared, double traceSigma) =>
        new(step, 0, 1, 0.1, 1, 1, 1, 0, 0, 0, 1000, 0, 100, double.NaN, gradSquared, traceSigma);

    private static RunLog Log(int stepsPerEpoch, IEnumerable<StepPoint> steps) => new(
        "events.clef",
        new RunInfo("r", 3, "actors", 4, "mlp(256)", 64, null, "none", 0.1, 0.1, 0, "sgd", stepsPerEpoch, 1000, DateTimeOffset.UnixEpoch),
        steps.ToList(), [], null, null, 0, 0);

    [Fact]
    public void Each_window_is_a_ratio_of_averages_not_an_average_of_ratios()
    {
        // Two steps per pair: |G|² estimates −1 and 3 (mean 1, one of them negative as single
        // estimates can be), tr Σ 50 and 150 (mean 100): B_simple = 100, while averaging the
        // per-step ratios would give (−50 + 50) / 2 = 0.
        var steps = Enumerable.Range(0, 80).Select(i => i % 2 == 0 ? Step(i, -1, 50) : Step(i, 3, 150));
        var log = Log(stepsPerEpoch: 40, steps);

        var curve = NoiseScaleWindows.Curve(log);
        Assert.Equal([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0], curve.Select(p => p.Epoch)); // ¼ epoch = 10 steps
        Assert.All(curve, p => Assert.Equal(100, p.BSimple, 9));
        Assert.Equal(100, NoiseScaleWindows.Final(log), 9);
    }

    [Fact]
    public void Windows_without_a_positive_gradient_estimate_and_runs_without_estimates_give_nothing()
    {
        var negative = Log(40, Enumerable.Range(0, 40).Select(i => Step(i, -1, 50)));
        Assert.Empty(NoiseScaleWindows.Curve(negative));
        Assert.True(double.IsNaN(NoiseScaleWindows.Final(negative)));
        var singleShare = Log(40, Enumerable.Range(0, 40).Select(i => Step(i, double.NaN, double.NaN)));
        Assert.Empty(NoiseScaleWindows.Curve(singleShare));
    }
}
