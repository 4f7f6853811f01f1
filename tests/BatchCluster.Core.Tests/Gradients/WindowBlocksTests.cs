using BatchCluster.Core.Gradients;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Tests.Gradients;

public class WindowBlocksTests
{
    /// <summary>The MLP's tensors in the flat order: fc1 784×256, its bias, fc2 256×10, its bias.</summary>
    private static readonly int[] Mlp = [200_704, 256, 2_560, 10];

    /// <summary>
    /// fc1 holds 98 whole blocks: a stratum, read at ⌈98/8⌉ = 13 blocks a window, each weighing 98/13. The two blocks after it
    /// (fc1's bias, fc2 and its bias: the small tensors, where much of the signal is) are read in every window with weight 1.
    /// </summary>
    [Fact]
    public void Large_tensors_are_sampled_and_small_ones_read_whole()
    {
        var blocks = new WindowBlocks(Mlp.Sum(), Mlp, seed: 1);
        Assert.Equal(100, blocks.Count);
        Assert.Equal(15, blocks.ReadCount);
        Assert.Equal(13, Enumerable.Range(0, 98).Count(blocks.Reads));
        Assert.All(Enumerable.Range(0, 98).Where(blocks.Reads), b => Assert.Equal(98.0 / 13, blocks.WeightOf(b)));
        Assert.Equal(1.0, blocks.WeightOf(98));
        Assert.Equal(1.0, blocks.WeightOf(99));
        // A model too small for a stratum is read whole.
        var small = new WindowBlocks(30_000, [30_000], seed: 1);
        Assert.Equal(small.Count, small.ReadCount);
        Assert.Throws<ArgumentException>(() => new WindowBlocks(100, [50, 40], seed: 1));
    }

    /// <summary>The draw depends on the seed and the window only (a resumed run draws what the uninterrupted one drew), and moves with the window.</summary>
    [Fact]
    public void A_window_draws_the_same_blocks_for_the_same_seed_and_index()
    {
        var a = new WindowBlocks(Mlp.Sum(), Mlp, seed: 7);
        var b = new WindowBlocks(Mlp.Sum(), Mlp, seed: 7);
        a.Draw(12);
        b.Draw(3);
        b.Draw(12);
        Assert.Equal(Read(a), Read(b));
        b.Draw(13);
        Assert.NotEqual(Read(a), Read(b));
    }

    private static int[] Read(WindowBlocks blocks) => Enumerable.Range(0, blocks.Count).Where(blocks.Reads).ToArray();

    /// <summary>
    /// Horvitz–Thompson: over the draws, the weighted squared norms of the read blocks average to the whole vector's squared norm.
    /// The vector's blocks differ 40-fold in size (as a real gradient's units do), so a single draw is off by tens of percent; the
    /// mean of 3,000 draws must be within four of its own standard errors of the truth (a single draw's spread is 22 % of it here, the
    /// mean's 0.4 %; weighing the read blocks n/(k + 1) instead of n/k misses by 6.8 %: checked by mutation).
    /// </summary>
    [Fact]
    public void The_sampled_squared_norm_is_unbiased()
    {
        var rng = new SplitMix64(5);
        var x = new float[Mlp.Sum()];
        for (int i = 0; i < x.Length; i++)
        {
            int block = i / WindowBlocks.BlockFloats;
            x[i] = (float)((rng.NextDouble() - 0.5) * (1 + block % 7 * 6)); // block scales 1 to 37
        }
        double truth = FlatMath.SquaredNorm(x);
        var blocks = new WindowBlocks(x.Length, Mlp, seed: 11);
        var estimates = new List<double>();
        for (long window = 0; window < 3000; window++)
        {
            blocks.Draw(window);
            double estimate = 0;
            for (int b = 0; b < blocks.Count; b++)
            {
                if (!blocks.Reads(b)) continue;
                int start = b * WindowBlocks.BlockFloats;
                estimate += blocks.WeightOf(b) * FlatMath.SquaredNorm(x.AsSpan(start, Math.Min(WindowBlocks.BlockFloats, x.Length - start)));
            }
            estimates.Add(estimate);
        }
        double mean = estimates.Average();
        double sd = Math.Sqrt(estimates.Sum(e => (e - mean) * (e - mean)) / (estimates.Count - 1));
        Assert.True(sd > 0.01 * truth, "the draws should differ");
        Assert.True(Math.Abs(mean - truth) < 4 * sd / Math.Sqrt(estimates.Count), $"mean {mean:G6} against {truth:G6} (sd {sd:G3})");
    }
}
