using BatchCluster.Core.BatchSizing;
using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Tests.BatchSizing;

public class EfficiencyTests
{
    [Theory]
    [InlineData(0.0)]
    [InlineData(50.0)]
    [InlineData(5000.0)]
    public void Efficiency_is_one_at_the_reference_batch_and_falls_above_it(double noiseScale)
    {
        Assert.Equal(1.0, Efficiency.Statistical(256, 256, noiseScale), 12);
        Assert.True(Efficiency.Statistical(512, 256, noiseScale) < 1);
        Assert.True(Efficiency.Statistical(128, 256, noiseScale) > 1);
        // Half the batch is worth at most twice per sample (all signal), and no less than the same (all noise).
        Assert.InRange(Efficiency.Statistical(128, 256, noiseScale), 1, 2);
    }

    [Fact]
    public void Unknown_or_all_noise_makes_every_batch_worth_the_same_per_sample()
    {
        Assert.Equal(1, Efficiency.Statistical(4096, 128, double.NaN));
        Assert.Equal(1, Efficiency.Statistical(4096, 128, double.PositiveInfinity));
        Assert.Equal(double.PositiveInfinity, Efficiency.NoiseScale(gradSquared: -0.1, traceSigma: 10));
    }

    /// <summary>1 ≤ r ≤ S for S ≥ 1 (and S ≤ r ≤ 1 below), over random estimates including the negative ones the unbiased estimators give.</summary>
    [Fact]
    public void The_adascale_gain_lies_between_one_and_the_scale()
    {
        var rng = new SplitMix64(3);
        for (int i = 0; i < 10_000; i++)
        {
            int batch = 1 + rng.NextInt(8192), reference = 1 + rng.NextInt(1024);
            double g2 = (rng.NextDouble() - 0.1) * 10, trace = (rng.NextDouble() - 0.1) * 1000;
            double r = Efficiency.AdaScaleGain(batch, reference, g2, trace), s = (double)batch / reference;
            Assert.InRange(r, Math.Min(1, s) - 1e-12, Math.Max(1, s) + 1e-12);
        }
    }

    [Fact]
    public void The_adascale_gain_is_the_scale_for_pure_noise_and_one_without_noise()
    {
        Assert.Equal(4, Efficiency.AdaScaleGain(1024, 256, gradSquared: 0, traceSigma: 100), 12);
        Assert.Equal(1, Efficiency.AdaScaleGain(1024, 256, gradSquared: 3, traceSigma: 0), 12);
        Assert.Equal(1, Efficiency.AdaScaleGain(1024, 256, double.NaN, double.NaN));
        // σ² = μ² (B_noise = M0): r = 2S / (1 + S) = 1.6 at S = 4.
        Assert.Equal(1.6, Efficiency.AdaScaleGain(1024, 256, gradSquared: 1, traceSigma: 256), 12);
    }
}
