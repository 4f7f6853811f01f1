using BatchCluster.Core.BatchSizing;
using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Tests.BatchSizing;

public class ThroughputModelTests
{
    private static readonly string Four = "w0,w1,w2,w3";

    /// <summary>
    /// Steps timed as 2 ms fixed + 0.5 ms + 0.01 ms per sample of compute, ±5 % noise, at three sizes: the fit recovers the terms
    /// within 10 % (the smoothed figures average about 5 steps each, so their noise is about 2 %).
    /// </summary>
    [Fact]
    public void Recovers_the_fixed_and_per_sample_terms_from_steps_at_several_sizes()
    {
        var model = new ThroughputModel();
        var rng = new SplitMix64(7);
        double Noisy(double x) => x * (1 + 0.1 * (rng.NextDouble() - 0.5));
        foreach (int batch in new[] { 128, 256, 512 })
            for (int i = 0; i < 40; i++)
            {
                double compute = Noisy(0.5 + 0.01 * batch);
                model.Observe(Four, batch, compute, compute + Noisy(2.0), transferMs: 1.0);
            }
        var terms = model.Terms;
        Assert.InRange(terms.ComputeMsPerSample, 0.009, 0.011);
        Assert.InRange(terms.ComputeInterceptMs, 0.3, 0.7);
        Assert.InRange(terms.FixedMs, 1.8, 2.2);
        Assert.InRange(terms.SamplesPerSecond(1024), 1024 / (2.0 + 0.5 + 10.24) * 1000 * 0.9, 1024 / (2.0 + 0.5 + 10.24) * 1000 * 1.1);
    }

    [Fact]
    public void One_size_is_read_through_the_origin_and_the_first_steps_of_a_layout_are_left_out()
    {
        var model = new ThroughputModel();
        model.Observe(Four, 128, slowestComputeMs: 100, stepMs: 500, transferMs: 0); // a first step: JIT and connections
        Assert.False(model.Ready);
        for (int i = 0; i < ThroughputModel.WarmUpSteps + 5; i++) model.Observe(Four, 128, 1.28, 3.28, 0);
        var terms = model.Terms;
        Assert.Equal(0.01, terms.ComputeMsPerSample, 9);
        Assert.Equal(0, terms.ComputeInterceptMs);
        Assert.Equal(2, terms.FixedMs, 9);
    }

    /// <summary>A worker joins: the new layout is fitted apart (its steps are faster), and the old one is kept for when it comes back.</summary>
    [Fact]
    public void Each_layout_has_its_own_fit()
    {
        var model = new ThroughputModel();
        for (int i = 0; i < 10; i++) model.Observe("w0,w1", 256, 2.56, 4.56, 0);
        for (int i = 0; i < 10; i++) model.Observe(Four, 256, 1.28, 3.28, 0);
        Assert.Equal(Four, model.Layout);
        Assert.Equal(0.005, model.Terms.ComputeMsPerSample, 9);
        model.Observe("w0,w1", 256, 2.56, 4.56, 0);
        Assert.Equal(0.01, model.Terms.ComputeMsPerSample, 9);
    }

    /// <summary>
    /// A new layout measured at one size takes the shape of the last layout's line: 10 ms per share and 0.01 ms per sample on two
    /// workers; on four, 6 ms at 200 samples (half of the 12 the line gives) reads as 5 ms + 0.005 ms per sample, not 0.03 per sample.
    /// </summary>
    [Fact]
    public void A_new_layout_seen_at_one_size_borrows_the_shape_of_the_last_line()
    {
        var model = new ThroughputModel();
        foreach (int batch in new[] { 100, 400 })
            for (int i = 0; i < 10; i++) model.Observe("w0,w1", batch, 10 + 0.01 * batch, 12 + 0.01 * batch, 0);
        for (int i = 0; i < 10; i++) model.Observe(Four, 200, 6, 8, 0);
        var terms = model.Terms;
        Assert.Equal(5, terms.ComputeInterceptMs, 9);
        Assert.Equal(0.005, terms.ComputeMsPerSample, 9);
        Assert.Equal(2, terms.FixedMs, 9);
    }
}
