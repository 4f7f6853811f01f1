using BatchCluster.Core.BatchSizing;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.Tests.Gradients;

public class PersistentGradientTests
{
    private const int Dims = 100;

    /// <summary>
    /// The gradient of step t is P + (−1)^t · O plus per-sample noise N(0, I): a persistent part |P|² = 1, an oscillation |O|² = 9
    /// that the next step undoes (what docs/adaptive-batch.md measured on the real model), tr Σ = 100. Four shares of 16 samples a
    /// step, as the local cluster computes them. The noise scale of the part that makes progress is tr Σ / |P|² = 100; B_simple,
    /// whose signal includes the oscillation, reads tr Σ / (|P|² + |O|²) = 10. Two sizers see the same 3,000 steps: with the window
    /// (--noise-window 10) B_noise must read 100 and without it (0) 10, each within 20 % at every check after the first 500 steps.
    /// The spread: a window's estimate of |P|² has a standard deviation of ~0.08 (its cross term 2 P·noise over ten steps of 64
    /// samples), the smoothing averages ~4 windows (±4 %), the smoothed tr Σ ±2 %: 20 % is over four standard deviations, while
    /// confusing the two signals is a factor of 10.
    /// </summary>
    [Fact]
    public void The_window_reads_the_noise_scale_of_the_persistent_gradient_where_B_simple_reads_the_oscillation()
    {
        var config = new TrainingConfig { GlobalBatch = 64, BaseBatch = 64, LrScaling = Core.Schedules.LrScaling.AdaScale };
        var windowed = new BatchSizer(config, 60_000, Dims);
        var instantaneous = new BatchSizer(config with { NoiseWindow = 0 }, 60_000, Dims);
        Assert.NotNull(windowed.Persistent);
        Assert.Null(instantaneous.Persistent);
        var rng = new SplitMix64(7);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var shareSum = new double[Dims];
        var total = new double[Dims];
        var mean = new float[Dims];
        const int shares = 4, share = 16, batch = shares * share;
        for (int step = 0; step < 3000; step++)
        {
            Array.Clear(total);
            var norms = new List<(int, double)>();
            for (int s = 0; s < shares; s++)
            {
                for (int d = 0; d < Dims; d++)
                {
                    double g = d == 0 ? 1 : d == 1 ? (step % 2 == 0 ? 3 : -3) : 0;
                    shareSum[d] = share * g + Math.Sqrt(share) * Normal();
                }
                norms.Add((share, shareSum.Sum(x => x * x)));
                for (int d = 0; d < Dims; d++) total[d] += shareSum[d];
            }
            for (int d = 0; d < Dims; d++) mean[d] = (float)(total[d] / batch);
            double meanNorm2 = total.Sum(x => x / batch * (x / batch));
            windowed.Persistent!.Add(0, mean, 1f);
            foreach (var sizer in new[] { windowed, instantaneous })
                sizer.Observe(batch, sizer.GainAt(batch), norms, meanNorm2, "", new StepTiming(1, 0, 0, 2));
            if (step >= 500 && step % 250 == 0)
            {
                Assert.InRange(windowed.NoiseScale, 80, 120);
                Assert.InRange(instantaneous.NoiseScale, 8, 12);
            }
        }
    }

    /// <summary>
    /// A window closes after <see cref="PersistentGradient.WindowProgress"/> of progress (τ: AdaScale's gains), not after a number
    /// of steps: at a gain of 2.5 a 10-step window holds 4 steps, at 0.5 it holds 20, and never fewer than two (so an oscillation of
    /// period two cancels) — at a gain of 20, two steps.
    /// </summary>
    [Theory]
    [InlineData(2.5, 4)]
    [InlineData(0.5, 20)]
    [InlineData(1.0, 10)]
    [InlineData(20.0, 2)]
    public void A_window_spans_progress_not_steps(double gain, int stepsPerWindow)
    {
        var persistent = new PersistentGradient(Dims, windowProgress: 10);
        var gradient = Enumerable.Repeat(0.5f, Dims).ToArray();
        var closedAt = new List<int>();
        for (int step = 1; step <= 3 * stepsPerWindow; step++)
        {
            persistent.Add(0, gradient, 1f);
            if (persistent.StepDone(64, gain, traceSigma: 1) is not null) closedAt.Add(step);
        }
        Assert.Equal([stepsPerWindow, 2 * stepsPerWindow, 3 * stepsPerWindow], closedAt);
        // A constant gradient persists whole: the window reads |G|² = 100 · 0.25 less the noise it subtracts (tr Σ/M per step).
        double expected = 25 - 1.0 / 64 / stepsPerWindow;
        Assert.Equal(expected, persistent.SmoothedSignal, 4);
    }

    /// <summary>A window's estimate needs tr Σ to take its noise out: a window that closes before the run has one counts for nothing.</summary>
    [Fact]
    public void A_window_without_a_noise_estimate_is_not_counted()
    {
        var persistent = new PersistentGradient(Dims, windowProgress: 2);
        var gradient = Enumerable.Repeat(1f, Dims).ToArray();
        for (int step = 0; step < 2; step++)
        {
            persistent.Add(0, gradient, 1f);
            Assert.Null(persistent.StepDone(64, 1, double.NaN));
        }
        Assert.True(double.IsNaN(persistent.SmoothedSignal));
    }

    /// <summary>
    /// A checkpoint keeps the open window (its sum, steps, noise and progress, the index its blocks are drawn by) and the smoothed
    /// signal: restored mid-window, the estimator continues bitwise as the uninterrupted one — on a model small enough to be read
    /// whole, and on one with a sampled tensor (18 whole blocks: 3 read a window) — and a ring's ranges, cut anywhere and added with
    /// a scale, land where they belong.
    /// </summary>
    [Theory]
    [InlineData(new[] { Dims })]
    [InlineData(new[] { 36_864, 4_000, 10 })]
    public void Restored_mid_window_it_continues_exactly(int[] tensors)
    {
        int size = tensors.Sum();
        var rng = new SplitMix64(3);
        var steps = Enumerable.Range(0, 40).Select(_ => Enumerable.Range(0, size).Select(_ => (float)(rng.NextDouble() - 0.4)).ToArray()).ToList();
        var whole = new PersistentGradient(size, 6, tensors, seed: 9);
        Assert.Equal(tensors.Length == 1 ? 1 : 3 + 2, whole.BlocksRead);
        PersistentGradient? resumed = null;
        for (int t = 0; t < steps.Count; t++)
        {
            if (t == 23)
            {
                resumed = new PersistentGradient(size, 6, tensors, seed: 9);
                resumed.Restore(whole.State);
            }
            foreach (var estimator in new[] { whole, resumed }.OfType<PersistentGradient>())
            {
                // As a ring applies ranges of gradient sums of a 64-sample batch: the same values, scaled on the way in.
                var sums = steps[t].Select(v => v * 64).ToArray();
                int cut = size / 3 + 7;
                estimator.Add(0, sums.AsSpan(0, cut), 1f / 64);
                estimator.Add(cut, sums.AsSpan(cut), 1f / 64);
                estimator.StepDone(64, 1.5, 2);
            }
        }
        Assert.Equal(whole.SmoothedSignal, resumed!.SmoothedSignal);
        Assert.True(whole.SmoothedSignal > 0);
        Assert.Throws<ArgumentException>(() => new PersistentGradient(size + 1, 6).Restore(whole.State));
    }
}
