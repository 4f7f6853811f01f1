using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Core.Tests.Training;

/// <summary>
/// A step committed shard by shard (the ring: the coordinator receives the batch's gradient sum
/// one shard at a time) against the whole commit (the star): the same parameters and optimizer
/// state, bit for bit, wherever the shards are cut and in whatever order they come; a commit that
/// breaks midway rolls back to exactly the last commit; a non-finite norm sent ahead skips the step.
/// </summary>
public class ShardedCommitTests
{
    private const int Parameters = 1037;
    private const int Batch = 16;

    private static TrainingConfig Config(OptimizerSettings optimizer, double clip = 0) => new()
    {
        Dataset = "synthetic", Model = ModelSpec.Mlp(8), GlobalBatch = Batch, Steps = 100, LearningRate = 0.05, Optimizer = optimizer,
        ClipGradNorm = clip, Seed = 3,
    };

    private static TrainingSession Session(TrainingConfig config)
    {
        var initial = Enumerable.Range(0, Parameters).Select(i => (float)Math.Sin(i)).ToArray();
        return new TrainingSession(config, trainSamples: 1000, initial, new RunEvents(Logger.None, "sharded"));
    }

    private static readonly StepMeasurements Measured = new(0, 0, 0, new Dictionary<string, double>());

    /// <summary>A gradient sum for one share of the whole batch, different every step.</summary>
    private static float[] SumFor(long step) =>
        Enumerable.Range(0, Parameters).Select(i => (float)(Math.Cos(i * 0.37 + step) * (1 + i % 5))).ToArray();

    private static ShareTally Tally(float[] sum) =>
        ShareTally.Reduced(Batch, lossSum: Batch * 0.7, FlatMath.SquaredNorm(sum), 1, "w");

    /// <summary>Shard boundaries chosen at random, applied in a random order.</summary>
    private static void ApplySharded(TrainingSession session, float[] sum, Random random)
    {
        var batch = session.NextBatch();
        var commit = session.BeginShardedCommit(batch, [Tally(sum)], FlatMath.SquaredNorm(sum))!;
        var cuts = Enumerable.Range(0, random.Next(1, 6)).Select(_ => random.Next(1, Parameters)).Append(0).Append(Parameters).Distinct().Order().ToArray();
        var ranges = cuts.Zip(cuts.Skip(1), (a, b) => (Offset: a, Length: b - a)).OrderBy(_ => random.Next()).ToList();
        foreach (var (offset, length) in ranges) commit.Apply(offset, sum.AsSpan(offset, length).ToArray());
        commit.Complete(Measured, session.NowMs);
    }

    public static TheoryData<string> Optimizers => new() { "sgd", "momentum", "nesterov", "adam" };

    private static OptimizerSettings Settings(string name) => name switch
    {
        "sgd" => new OptimizerSettings(OptimizerKind.Sgd, WeightDecay: 1e-3),
        "momentum" => new OptimizerSettings(OptimizerKind.Momentum, WeightDecay: 1e-3),
        "nesterov" => new OptimizerSettings(OptimizerKind.Momentum, Nesterov: true),
        _ => new OptimizerSettings(OptimizerKind.Adam, WeightDecay: 1e-3),
    };

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void Shards_in_any_cut_and_order_give_the_whole_commits_bits(string optimizer)
    {
        var whole = Session(Config(Settings(optimizer)));
        var sharded = Session(Config(Settings(optimizer)));
        var random = new Random(5);
        for (long step = 0; step < 12; step++)
        {
            var sum = SumFor(step);
            whole.Commit(whole.NextBatch(), [new ShareGradient(sum.ToArray(), Batch, Batch * 0.7, FlatMath.SquaredNorm(sum), 1)], Measured, whole.NowMs);
            ApplySharded(sharded, sum, random);
        }
        Assert.Equal(whole.Parameters.ToArray(), sharded.Parameters.ToArray());
        var a = whole.Capture().Optimizer;
        var b = sharded.Capture().Optimizer;
        Assert.Equal(a.StepCount, b.StepCount);
        for (int i = 0; i < a.Buffers.Count; i++) Assert.Equal(a.Buffers[i], b.Buffers[i]);
    }

    /// <summary>
    /// With clipping, the sharded commit's norm comes from the shards' squared sums (√Σ / B) instead
    /// of the mean's own values: the clip factor may differ in its last bit, so the parameters agree
    /// to float rounding, not bitwise (after 12 clipped steps, within 1e-6 relative to their size).
    /// </summary>
    [Fact]
    public void Clipping_by_the_norm_sent_ahead_matches_the_whole_commit()
    {
        var config = Config(Settings("momentum"), clip: 0.5);
        var whole = Session(config);
        var sharded = Session(config);
        var random = new Random(9);
        for (long step = 0; step < 12; step++)
        {
            var sum = SumFor(step);
            whole.Commit(whole.NextBatch(), [new ShareGradient(sum.ToArray(), Batch, Batch * 0.7, FlatMath.SquaredNorm(sum), 1)], Measured, whole.NowMs);
            ApplySharded(sharded, sum, random);
        }
        var w = whole.Parameters.ToArray();
        var s = sharded.Parameters.ToArray();
        for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(w[i] - s[i]) <= 1e-6 * Math.Max(1, Math.Abs(w[i])), $"value {i}: {w[i]} vs {s[i]}");
    }

    [Fact]
    public void A_commit_rolled_back_midway_leaves_parameters_and_state_as_they_were()
    {
        var config = Config(Settings("adam"));
        var reference = Session(config);
        var broken = Session(config);
        var random = new Random(1);
        ApplySharded(reference, SumFor(0), random);
        ApplySharded(broken, SumFor(0), random);
        var before = broken.Capture();

        var commit = broken.BeginShardedCommit(broken.NextBatch(), [Tally(SumFor(1))], FlatMath.SquaredNorm(SumFor(1)))!;
        commit.Apply(100, SumFor(1).AsSpan(100, 500).ToArray());
        commit.Apply(0, SumFor(1).AsSpan(0, 100).ToArray());
        Assert.NotEqual(before.Parameters, broken.Parameters.ToArray());
        commit.RollBack();

        var after = broken.Capture();
        Assert.Equal(before.Parameters, after.Parameters);
        Assert.Equal(before.NextStep, after.NextStep);
        for (int i = 0; i < before.Optimizer.Buffers.Count; i++) Assert.Equal(before.Optimizer.Buffers[i], after.Optimizer.Buffers[i]);
        // The same step again, now whole, lands exactly where an unbroken run does.
        ApplySharded(broken, SumFor(1), new Random(2));
        ApplySharded(reference, SumFor(1), new Random(3));
        Assert.Equal(reference.Parameters.ToArray(), broken.Parameters.ToArray());
    }

    /// <summary>
    /// A run that estimates the noise (AdaScale) adds every applied step's mean gradient to the persistent gradient's window
    /// (docs/adaptive-batch.md): a ring adds each reduced range as it is applied, scaled by 1/B, and must end with the window the
    /// star's whole mean gives — bitwise here, since 1/16 is exact — also when a commit broke midway and was rolled back.
    /// </summary>
    [Fact]
    public void The_noise_window_adds_the_same_mean_whole_or_by_shards_and_forgets_a_rolled_back_step()
    {
        var config = Config(Settings("momentum")) with { LrScaling = Core.Schedules.LrScaling.AdaScale, BaseBatch = Batch };
        var whole = Session(config);
        var sharded = Session(config);
        var random = new Random(4);
        for (long step = 0; step < 13; step++)
        {
            var sum = SumFor(step);
            if (step == 11)
            {
                var broken = sharded.BeginShardedCommit(sharded.NextBatch(), [Tally(sum)], FlatMath.SquaredNorm(sum))!;
                broken.Apply(200, sum.AsSpan(200, 300).ToArray());
                broken.RollBack();
            }
            whole.Commit(whole.NextBatch(), [new ShareGradient(sum.ToArray(), Batch, Batch * 0.7, FlatMath.SquaredNorm(sum), 1)], Measured, whole.NowMs);
            ApplySharded(sharded, sum, random);
        }
        var a = whole.Capture().Sizing!.Persistent!;
        var b = sharded.Capture().Sizing!.Persistent!;
        Assert.Equal(3, a.Steps); // the first window closed after 10 steps at gain 1; steps 10–12 are open
        Assert.Equal(a.Steps, b.Steps);
        Assert.Contains(a.WindowSum, v => v != 0);
        Assert.Equal(a.WindowSum, b.WindowSum);
    }

    /// <summary>
    /// The star adds each step's mean to the noise window as it averages, before it knows the step is finite: a skipped step's
    /// NaN must not stay in the window (it would read NaN for the rest of the run). The window is discarded, and the next ones
    /// are finite and close again.
    /// </summary>
    [Fact]
    public void A_skipped_non_finite_step_does_not_poison_the_noise_window()
    {
        var session = Session(Config(Settings("momentum")) with { LrScaling = Core.Schedules.LrScaling.AdaScale, BaseBatch = Batch });
        void Commit(float[] sum) =>
            session.Commit(session.NextBatch(), [new ShareGradient(sum, Batch, Batch * 0.7, FlatMath.SquaredNorm(sum), 1)], Measured, session.NowMs);
        for (long step = 0; step < 3; step++) Commit(SumFor(step));
        var poisoned = SumFor(3);
        poisoned[17] = float.NaN;
        Assert.Null(session.Commit(session.NextBatch(), [new ShareGradient(poisoned, Batch, Batch * 0.7, double.NaN, 1)], Measured, session.NowMs));
        var afterSkip = session.Capture().Sizing!.Persistent!;
        Assert.Equal(0, afterSkip.Steps);
        Assert.All(afterSkip.WindowSum, v => Assert.Equal(0f, v));
        for (long step = 4; step < 7; step++) Commit(SumFor(step));
        var window = session.Capture().Sizing!.Persistent!;
        Assert.Equal(3, window.Steps);
        Assert.True(FlatMath.AllFinite(window.WindowSum) && window.WindowSum.Any(v => v != 0));
    }

    [Fact]
    public void Ranges_must_cover_the_model_exactly_once()
    {
        var session = Session(Config(Settings("sgd")));
        var sum = SumFor(0);
        var commit = session.BeginShardedCommit(session.NextBatch(), [Tally(sum)], FlatMath.SquaredNorm(sum))!;
        commit.Apply(0, sum.AsSpan(0, 600).ToArray());
        Assert.Throws<InvalidOperationException>(() => commit.Apply(599, sum.AsSpan(599, 10).ToArray()));
        Assert.Throws<ArgumentOutOfRangeException>(() => commit.Apply(1000, new float[100]));
        Assert.Throws<InvalidOperationException>(() => commit.Complete(Measured, 0));
        commit.Apply(600, sum.AsSpan(600).ToArray());
        commit.Complete(Measured, 0);
        Assert.Equal(1, session.NextStep);
    }

    [Fact]
    public void A_non_finite_norm_sent_ahead_skips_the_step_before_any_shard()
    {
        var session = Session(Config(Settings("momentum")) with { MaxBadSteps = 2 });
        var before = session.Parameters.ToArray();
        var sum = SumFor(0);
        Assert.Null(session.BeginShardedCommit(session.NextBatch(), [ShareTally.Reduced(Batch, 1, double.NaN, 1, "bad")], double.NaN));
        Assert.Equal(1, session.NextStep);
        Assert.Equal(before, session.Parameters.ToArray());
        var failure = Assert.Throws<RunFailedException>(() =>
            session.BeginShardedCommit(session.NextBatch(), [Tally(sum)], double.PositiveInfinity));
        Assert.Contains("2 steps in a row", failure.Message);
    }
}
