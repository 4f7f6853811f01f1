using BatchCluster.Core.Gradients;
using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Tests.Gradients;

public class GradientNoiseScaleTests
{
    /// <summary>Fed the exact expectations E|G_b|² = |G|² + trΣ/b, the formulas return |G|² and trΣ exactly.</summary>
    [Fact]
    public void The_two_batch_size_formulas_invert_the_expectations()
    {
        const double g2 = 4, trace = 200;
        const int b = 32, B = 128;
        var estimate = new GradientNoiseScale().Update([(b, b * b * (g2 + trace / b))], B, g2 + trace / B);
        Assert.Equal(g2, estimate.GradSquared, 9);
        Assert.Equal(trace, estimate.TraceSigma, 9);
        Assert.Equal(trace / g2, estimate.BSimple, 9);
    }

    /// <summary>
    /// Synthetic per-sample gradients g = G + ε with ε ~ N(0, σ² I) in 200 dimensions: tr Σ = 200 σ²,
    /// |G|² = 4, so B_simple = 50 for σ = 1. Four shares of 32 per step of 128, as four workers give.
    /// After 1,000 steps the smoothed ratio must be within 10% of the truth.
    /// </summary>
    [Fact]
    public void Recovers_a_known_noise_scale_from_share_gradients_within_ten_percent()
    {
        const int dims = 200, share = 32, shares = 4, batch = share * shares;
        var rng = new SplitMix64(11);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var g = Enumerable.Range(0, dims).Select(i => i < 4 ? 1.0 : 0.0).ToArray(); // |G|² = 4

        var scale = new GradientNoiseScale(decay: 0.99);
        NoiseScaleEstimate last = default;
        var sum = new double[dims];
        var total = new double[dims];
        for (int step = 0; step < 1000; step++)
        {
            Array.Clear(total);
            var norms = new List<(int, double)>();
            for (int s = 0; s < shares; s++)
            {
                Array.Clear(sum);
                for (int j = 0; j < share; j++)
                    for (int d = 0; d < dims; d++) sum[d] += g[d] + Normal();
                norms.Add((share, sum.Sum(x => x * x)));
                for (int d = 0; d < dims; d++) total[d] += sum[d];
            }
            double meanNorm2 = total.Sum(x => (x / batch) * (x / batch));
            last = scale.Update(norms, batch, meanNorm2);
        }
        Assert.InRange(last.BSimple, 45, 55);
        Assert.InRange(last.EmaTraceSigma, 180, 220);
    }

    [Fact]
    public void One_share_covering_the_batch_gives_no_estimate()
    {
        var estimate = new GradientNoiseScale().Update([(128, 1.0)], 128, 1.0);
        Assert.True(double.IsNaN(estimate.GradSquared));
        Assert.True(double.IsNaN(estimate.BSimple));
    }
}
