using BatchCluster.Core.Gradients;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Tests.Gradients;

public class ShareHalvesTests
{
    [Theory]
    [InlineData(128, 1, 64)]
    [InlineData(129, 1, 64)]
    [InlineData(96, 16, 48)]   // six ghost batches: three each
    [InlineData(48, 16, 16)]   // three ghost batches: the first half takes one
    [InlineData(16, 16, 0)]    // one ghost batch cannot be cut
    public void The_cut_is_half_the_whole_granules(int count, int granule, int first) =>
        Assert.Equal(first, ShareHalves.FirstHalf(count, granule));

    /// <summary>
    /// Real halves always pass (random float vectors of 1,000 values, 200 pairs, correlated and not, their sum rounded to float as a
    /// worker's is); a first half reported 100 × too large, or a negative or NaN norm, fails.
    /// </summary>
    [Fact]
    public void Real_halves_are_consistent_with_their_sum_and_gross_lies_are_not()
    {
        var rng = new SplitMix64(3);
        for (int pair = 0; pair < 200; pair++)
        {
            var a = new float[1000];
            var b = new float[1000];
            double shared = pair % 2 == 0 ? 0 : 1; // half the pairs share a common direction, as halves of one batch do
            for (int i = 0; i < a.Length; i++)
            {
                double common = shared * (rng.NextDouble() - 0.5);
                a[i] = (float)(common + rng.NextDouble() - 0.5);
                b[i] = (float)(common + rng.NextDouble() - 0.5);
            }
            var sum = new float[a.Length];
            FlatMath.Add(a, b, sum);
            double first = FlatMath.SquaredNorm(a), second = FlatMath.SquaredNorm(b), total = FlatMath.SquaredNorm(sum);
            Assert.True(ShareHalves.Consistent(first, second, total));
            Assert.False(ShareHalves.Consistent(first * 100, second, total));
        }
        Assert.False(ShareHalves.Consistent(-1, 1, 1));
        Assert.False(ShareHalves.Consistent(double.NaN, 1, 1));
        Assert.True(ShareHalves.Consistent(1, 1, 4));  // parallel halves: ‖a + b‖ = ‖a‖ + ‖b‖
        Assert.True(ShareHalves.Consistent(1, 1, 0));  // opposite halves cancel
        Assert.False(ShareHalves.Consistent(1, 1, 4.01));
    }
}
