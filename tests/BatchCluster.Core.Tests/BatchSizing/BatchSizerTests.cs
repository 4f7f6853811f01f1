using BatchCluster.Core.BatchSizing;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.Tests.BatchSizing;

public class BatchSizerTests
{
    /// <summary>
    /// Per-sample gradients g = G + ε, ε ~ N(0, I) in 100 dimensions: |G|² = 4, tr Σ = 100 (B_noise 25). The batch changes every
    /// 200 steps among 64, 512 and 2 × 16 (the plain loop's two halves), so each estimate comes from other sizes: the smoothed
    /// |G|² and tr Σ must stay unbiased through the changes. Checked at the end of each stretch: B_noise within 10 % and the
    /// AdaScale gain at 512 within 3 % of the truth. Measured over 10 seeds × 4 stretches: B_noise spreads 1.4 % (worst 3.5 %),
    /// the gain 0.3 % (worst 0.8 %), so the bounds sit at about 7 and 9 standard deviations; an estimator that mixed up share and
    /// batch sizes would miss B_noise by a factor, not by percent.
    /// </summary>
    [Fact]
    public void Recovers_known_gradient_and_noise_figures_while_the_batch_changes()
    {
        const int dims = 100;
        const double g2 = 4, trace = dims;
        // --noise-window 0: each step's own gradient is the signal (the window's estimate: PersistentGradientTests).
        var config = new TrainingConfig { GlobalBatch = 64, BaseBatch = 64, LrScaling = Core.Schedules.LrScaling.AdaScale, NoiseWindow = 0 };
        var sizer = new BatchSizer(config, trainSamples: 60_000, parameterCount: 8);
        var rng = new SplitMix64(21);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var sum = new double[dims];
        var total = new double[dims];
        foreach (var (batch, shares) in new[] { (64, 4), (512, 4), (32, 2), (64, 4) })
        {
            for (int step = 0; step < 600; step++)
            {
                Array.Clear(total);
                var norms = new List<(int, double)>();
                int share = batch / shares;
                for (int s = 0; s < shares; s++)
                {
                    // A share's gradient sum: share·G + N(0, share·I), drawn whole.
                    for (int d = 0; d < dims; d++) sum[d] = share * (d < 4 ? 1.0 : 0.0) + Math.Sqrt(share) * Normal();
                    norms.Add((share, sum.Sum(x => x * x)));
                    for (int d = 0; d < dims; d++) total[d] += sum[d];
                }
                double meanNorm2 = total.Sum(x => x / batch * (x / batch));
                sizer.Observe(batch, 1, norms, meanNorm2, "", new StepTiming(1, 0, 0, 2));
            }
            Assert.InRange(sizer.NoiseScale, trace / g2 * 0.9, trace / g2 * 1.1);
            double r = sizer.GainAt(512);
            double expected = Efficiency.AdaScaleGain(512, 64, g2, trace);
            Assert.InRange(r, expected * 0.97, expected * 1.03);
        }
    }

    /// <summary>
    /// The warm-up of a run whose batch varies counts steps at the base batch (samples ÷ M0) under a fixed rule, τ under AdaScale,
    /// and a fixed batch's own steps: an epoch of warm-up stays an epoch whatever batches the run takes.
    /// </summary>
    [Fact]
    public void The_schedule_advances_by_samples_over_the_base_batch_where_the_batch_varies()
    {
        var timing = new StepTiming(1, 0, 0, 2);
        var scheduled = new BatchSizer(new TrainingConfig { GlobalBatch = 64, BaseBatch = 64, BatchSchedule = [new(0, 256)] }, 60_000, 8);
        var fixedBatch = new BatchSizer(new TrainingConfig { GlobalBatch = 256, BaseBatch = 64 }, 60_000, 8);
        for (int step = 0; step < 3; step++)
        {
            scheduled.Observe(256, scheduled.GainAt(256), [], 0, "", timing);
            fixedBatch.Observe(256, fixedBatch.GainAt(256), [], 0, "", timing);
        }
        Assert.Equal(12, scheduled.ScheduleProgress(3)); // three steps of 4 × M0
        Assert.Equal(3, fixedBatch.ScheduleProgress(3));
    }

    /// <summary>
    /// --max-lr caps AdaScale's gain at max-lr ÷ lr, and nothing else: the same all-noise shares (tr Σ 100, |G|² ≈ 0, where the gain
    /// is S) give 8 at 2,048 with M0 256 without a ceiling, 3 with --max-lr 0.3 at --lr 0.1, and below the ceiling the two agree.
    /// </summary>
    [Fact]
    public void A_rate_ceiling_caps_the_adascale_gain()
    {
        var config = new TrainingConfig { GlobalBatch = 256, BaseBatch = 256, LearningRate = 0.1, LrScaling = Core.Schedules.LrScaling.AdaScale, NoiseWindow = 0 };
        var free = new BatchSizer(config, 60_000, 8);
        var capped = new BatchSizer(config with { MaxLearningRate = 0.3 }, 60_000, 8);
        var rng = new SplitMix64(3);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        for (int step = 0; step < 50; step++)
        {
            // Two shares of 128 whose sums are pure noise N(0, 128·I) in 100 dimensions: the mean gradient's norm is noise only.
            var first = Enumerable.Range(0, 100).Select(_ => Math.Sqrt(128) * Normal()).ToArray();
            var second = Enumerable.Range(0, 100).Select(_ => Math.Sqrt(128) * Normal()).ToArray();
            (int, double)[] shares = [(128, first.Sum(x => x * x)), (128, second.Sum(x => x * x))];
            double mean = first.Zip(second, (a, b) => (a + b) / 256).Sum(x => x * x);
            foreach (var sizer in new[] { free, capped }) sizer.Observe(256, sizer.GainAt(256), shares, mean, "", new StepTiming(1, 0, 0, 2));
        }
        Assert.InRange(free.GainAt(2048), 6, 8);
        Assert.Equal(3, capped.GainAt(2048), 12);
        Assert.Equal(free.GainAt(512), capped.GainAt(512), 12);
        Assert.Equal(double.PositiveInfinity, new BatchSizer(config with { LrScaling = Core.Schedules.LrScaling.Linear, MaxLearningRate = 0.3 }, 60_000, 8).MaxGain);
    }
}
