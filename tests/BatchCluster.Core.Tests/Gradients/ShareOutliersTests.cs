using BatchCluster.Core.Gradients;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.Tests.Gradients;

/// <summary>
/// The outlier rule on shares whose gradients are drawn with a known signal |G| and noise σ per sample: honest
/// shares in either regime, of equal or very unequal sizes, are never flagged; a share of another scale (×10³, zeros)
/// is, and only it.
/// </summary>
public sealed class ShareOutliersTests
{
    private const int Dimensions = 2000;

    /// <summary>The gradient SUM of <paramref name="samples"/> samples: each sample's gradient is <paramref name="signal"/>·e₀ plus N(0, σ²/D) per coordinate.</summary>
    private static double SumSquaredNorm(Random random, int samples, double signal, double sigma)
    {
        double total = 0;
        double perCoordinate = sigma / Math.Sqrt(Dimensions) * Math.Sqrt(samples); // the sum's noise per coordinate
        for (int d = 0; d < Dimensions; d++)
        {
            double mean = d == 0 ? samples * signal : 0;
            double value = mean + perCoordinate * Gaussian(random);
            total += value * value;
        }
        return total;
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    [Theory]
    [InlineData(1.0, 0.01)]  // signal dominates
    [InlineData(0.01, 1.0)]  // noise dominates
    [InlineData(0.1, 1.0)]
    public void Honest_shares_of_any_sizes_are_not_flagged(double signal, double sigma)
    {
        var random = new Random(7);
        int[][] layouts = [[32, 32, 32, 32], [1, 64, 63], [127, 1, 1, 1], [2, 40, 40, 40, 6], [500, 3, 250]];
        for (int trial = 0; trial < 50; trial++)
            foreach (var sizes in layouts)
            {
                var norms = sizes.Select(n => SumSquaredNorm(random, n, signal, sigma)).ToArray();
                Assert.Null(ShareOutliers.Find(sizes, norms, Workers(sizes.Length)));
            }
    }

    [Theory]
    [InlineData(1e3)]
    [InlineData(1e6)]
    [InlineData(0.0)]
    public void A_share_of_another_scale_is_flagged_and_only_it(double scale)
    {
        var random = new Random(11);
        int[] sizes = [40, 40, 40, 40];
        var norms = sizes.Select(n => SumSquaredNorm(random, n, 0.1, 1.0)).ToArray();
        norms[2] *= scale * scale;
        var outlier = Assert.Single(ShareOutliers.Find(sizes, norms, Workers(sizes.Length))!);
        Assert.Equal(2, outlier.Place);
        Assert.Equal(40, outlier.Samples);
        Assert.True(scale > 1 ? outlier.Ratio > outlier.Allowed : outlier.Ratio < outlier.Allowed);
    }

    /// <summary>Each share from its own worker.</summary>
    private static int[] Workers(int shares) => Enumerable.Range(1, shares).ToArray();

    /// <summary>
    /// After a re-plan one worker can hold two of a step's four shares: the median is over workers, so a bad worker's two
    /// shares are flagged and the honest ones are not (a median over shares sat between the two scales and flagged the
    /// honest pair as too small — the CI failure that let a 1e6× gradient through).
    /// </summary>
    [Fact]
    public void A_bad_worker_with_two_shares_of_the_step_is_flagged_not_the_honest_ones()
    {
        var random = new Random(5);
        int[] sizes = [40, 40, 24, 24];
        int[] workers = [1, 2, 3, 3];
        var norms = sizes.Select(n => SumSquaredNorm(random, n, 0.1, 1.0)).ToArray();
        norms[2] *= 1e12;
        norms[3] *= 1e12;
        var outliers = ShareOutliers.Find(sizes, norms, workers)!;
        Assert.Equal([2, 3], outliers.Select(o => o.Place));
    }

    [Fact]
    public void Fewer_than_three_workers_or_a_non_finite_norm_flag_nothing()
    {
        Assert.Null(ShareOutliers.Find([40, 40], [1.0, 1e12], [1, 2]));
        Assert.Null(ShareOutliers.Find([40, 40, 40], [1.0, 1.0, 1e12], [1, 2, 2]));
        Assert.Null(ShareOutliers.Find([40, 40, 40], [1.0, double.NaN, 1e12], [1, 2, 3]));
        Assert.Null(ShareOutliers.Find([40, 40, 40], [1.0, double.PositiveInfinity, 1.0], [1, 2, 3]));
    }

    [Fact]
    public void A_reported_norm_agrees_within_rounding_and_bf16_but_not_a_lie()
    {
        Assert.True(ShareOutliers.NormAgrees(100.0, 100.0 * (1 + 1e-12), TransferPrecision.Fp32));
        Assert.False(ShareOutliers.NormAgrees(100.0, 100.0 * (1 + 1e-5), TransferPrecision.Fp32));
        Assert.True(ShareOutliers.NormAgrees(100.0, 100.8, TransferPrecision.Bf16));
        Assert.False(ShareOutliers.NormAgrees(400.0, 100.0, TransferPrecision.Bf16));
        Assert.True(ShareOutliers.NormAgrees(double.NaN, double.PositiveInfinity, TransferPrecision.Fp32));
        Assert.False(ShareOutliers.NormAgrees(1.0, double.NaN, TransferPrecision.Fp32));
    }
}
