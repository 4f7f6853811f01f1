using BatchCluster.Core.Gradients;
using BatchCluster.Core.Planning;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace BatchCluster.Core.Tests.Gradients;

public class ExactAverageProperties
{
    /// <summary>
    /// Per-sample "gradients" are small integers, so every partial sum is exact in float32 and the
    /// weighted mean of share sums must equal the full-batch mean to the last bit of the division.
    /// </summary>
    [Property(MaxTest = 200)]
    public Property Weighted_mean_of_share_sums_equals_the_full_batch_mean(PositiveInt batch, PositiveInt workers, PositiveInt dims, int seed)
    {
        int n = batch.Get % 500 + 1, w = workers.Get % 16 + 1, d = dims.Get % 20 + 1;
        var rng = new Random(seed);
        var perSample = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, d).Select(_ => (float)rng.Next(-100, 101)).ToArray()).ToArray();

        var full = new float[d];
        for (int k = 0; k < d; k++) full[k] = perSample.Sum(g => g[k]) / n;

        var shares = SharePlanner.PlanEven(Enumerable.Range(0, n).ToArray(), w)
            .Select(s =>
            {
                var sum = new float[d];
                foreach (int id in s.SampleIds) for (int k = 0; k < d; k++) sum[k] += perSample[id][k];
                return new ShareGradient(sum, s.Size, 0, 0, 0);
            }).ToList();
        var mean = new float[d];
        int total = ExactAverage.Compute(shares, mean);
        return (total == n && mean.SequenceEqual(full)).ToProperty();
    }

    [Fact]
    public void Unequal_shares_are_weighted_by_sample_count_not_averaged_per_share()
    {
        // Share A: 3 samples with gradient sum 3 (mean 1); share B: 1 sample with gradient 5.
        var mean = new float[1];
        ExactAverage.Compute([new ShareGradient(new[] { 3f }, 3, 0, 0, 0), new ShareGradient(new[] { 5f }, 1, 0, 0, 0)], mean);
        Assert.Equal(2f, mean[0]); // (3 + 5) / 4, not (1 + 5) / 2
    }

    [Fact]
    public void Mismatched_lengths_are_refused()
    {
        var mean = new float[2];
        Assert.Throws<ArgumentException>(() => ExactAverage.Compute([new ShareGradient(new[] { 1f }, 1, 0, 0, 0)], mean));
    }

    [Fact]
    public void Clipping_scales_to_the_maximum_norm()
    {
        var g = new float[] { 3f, 4f };
        double norm = GradientClipping.L2Norm(g);
        Assert.Equal(5.0, norm, 6);
        float factor = GradientClipping.Factor(norm, 1.0);
        Assert.Equal(1.0, GradientClipping.L2Norm(g.Select(v => v * factor).ToArray()), 5);
        Assert.Equal(1f, GradientClipping.Factor(GradientClipping.L2Norm([0.3f, 0.4f]), 1.0)); // under the maximum: untouched
        Assert.Equal(1f, GradientClipping.Factor(norm, 0)); // 0: no clipping
    }
}
