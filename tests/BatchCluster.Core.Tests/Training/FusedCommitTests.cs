using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Core.Tests.Training;

/// <summary>
/// The coordinator's commit in two fused passes (the average with its norm, then the optimizer with
/// clipping and the finite check) against a scalar oracle written from the formulas, element by
/// element, and against the separate passes it replaced.
/// <para>Tolerances: per element the fused passes do the same float32 operations in the same order
/// as the oracle (no fused multiply-add, the shares summed in plan order), so the mean and the
/// parameters after an unclipped step are compared bit for bit. Only the squared norm is summed in a
/// different order (vector lanes, then the lanes' sums): every square of a float is exact in double
/// and a sum of n = 5,003 positive terms rounds by at most n·2⁻⁵³ ≈ 6e-13 relative, so 1e-12 is
/// asserted. Clipping multiplies by maxNorm / (norm + 1e-6) rounded to float; a norm that differs by
/// 1e-12 relative can move that factor by at most one float ulp (6e-8 relative), so a clipped run's
/// parameters may differ by ~6e-8 × lr × |g| per step: after 12 steps at lr 0.05 with |g| clipped to
/// 0.5 that is &lt; 1e-8, and 1e-7 absolute is asserted (a wrong factor or order shows at 1e-3).</para>
/// </summary>
public class FusedCommitTests
{
    private const int Parameters = 5003; // three blocks of ExactAverage, and a partial last vector at any width
    private const int Steps = 12;
    private static readonly int[] ShareSizes = [5, 3, 8];
    private static int Batch => ShareSizes.Sum();

    private static readonly StepMeasurements Measured = new(0, 0, 0, new Dictionary<string, double>());

    public static TheoryData<string, double> OptimizersAndClipping => new()
    {
        { "sgd", 0 }, { "momentum", 0 }, { "nesterov", 0 }, { "adam", 0 },
        { "sgd", 0.5 }, { "momentum", 0.5 }, { "adam", 0.5 },
    };

    private static OptimizerSettings Settings(string name) => name switch
    {
        "sgd" => new OptimizerSettings(OptimizerKind.Sgd, WeightDecay: 1e-3),
        "momentum" => new OptimizerSettings(OptimizerKind.Momentum, WeightDecay: 1e-3),
        "nesterov" => new OptimizerSettings(OptimizerKind.Momentum, Nesterov: true, WeightDecay: 1e-3),
        _ => new OptimizerSettings(OptimizerKind.Adam, WeightDecay: 1e-3),
    };

    private static TrainingConfig Config(string optimizer, double clip) => new()
    {
        Dataset = "synthetic", Model = ModelSpec.Mlp(8), GlobalBatch = Batch, Steps = 100, LearningRate = 0.05,
        Optimizer = Settings(optimizer), ClipGradNorm = clip, Seed = 3,
    };

    private static float[] Initial() => Enumerable.Range(0, Parameters).Select(i => (float)Math.Sin(i)).ToArray();

    /// <summary>Gradient sums of the step's shares, different per share and step, of varied magnitude.</summary>
    private static float[][] SumsFor(long step) => ShareSizes.Select((size, k) => Enumerable.Range(0, Parameters)
        .Select(i => (float)(Math.Cos(i * 0.37 + step + 11 * k) * size * (1 + i % 7) / 3)).ToArray()).ToArray();

    private static List<ShareGradient> Shares(float[][] sums) =>
        sums.Select((sum, k) => new ShareGradient(sum, ShareSizes[k], ShareSizes[k] * 0.7, FlatMath.SquaredNorm(sum), 1, $"w{k}")).ToList();

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(2048)]
    [InlineData(2049)]
    [InlineData(5003)]
    [InlineData(203_530)] // the MLP
    public void The_fused_average_has_the_bits_of_separate_passes_and_of_the_scalar_oracle(int length)
    {
        var random = new Random(length);
        for (int shares = 1; shares <= 5; shares++)
        {
            var sums = Enumerable.Range(0, shares).Select(_ => Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray()).ToArray();
            var counts = Enumerable.Range(0, shares).Select(_ => random.Next(1, 100)).ToArray();
            var fused = new float[length];
            int total = ExactAverage.Compute(sums.Select((s, k) => new ShareGradient(s, counts[k], 0, 0, 0)).ToList(), fused, out double fusedNorm);
            Assert.Equal(counts.Sum(), total);

            // The passes the fused one replaced: copy, add each share, divide, norm.
            var passes = (float[])sums[0].Clone();
            for (int k = 1; k < shares; k++) FlatMath.AddInPlace(passes, sums[k]);
            FlatMath.DivideInPlace(passes, total);
            Assert.Equal(passes, fused);
            Assert.Equal(FlatMath.SquaredNorm(passes), fusedNorm); // same accumulators, same order: the same double

            // The scalar oracle.
            double oracleNorm = 0;
            for (int i = 0; i < length; i++)
            {
                float sum = sums[0][i];
                for (int k = 1; k < shares; k++) sum += sums[k][i];
                float mean = sum / total;
                Assert.Equal(mean, fused[i]);
                oracleNorm += (double)mean * mean;
            }
            Assert.True(Math.Abs(fusedNorm - oracleNorm) <= 1e-12 * oracleNorm, $"norm {fusedNorm:R} vs oracle {oracleNorm:R}");
        }
    }

    [Theory]
    [MemberData(nameof(OptimizersAndClipping))]
    public void A_commit_equals_the_scalar_oracle(string optimizer, double clip)
    {
        var config = Config(optimizer, clip);
        var session = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "fused"));
        var oracle = new ScalarOracle(config.Optimizer, Initial());
        for (long step = 0; step < Steps; step++)
        {
            var sums = SumsFor(step);
            var record = session.Commit(session.NextBatch(), Shares(sums), Measured, session.NowMs)!;
            double oracleNorm = oracle.Step(sums, ShareSizes, (float)record.LearningRate, clip);
            Assert.True(Math.Abs(record.GradNorm - oracleNorm) <= 1e-12 * oracleNorm, $"step {step}: norm {record.GradNorm:R} vs oracle {oracleNorm:R}");
        }
        var parameters = session.Parameters.ToArray();
        if (clip == 0) Assert.Equal(oracle.Parameters, parameters);
        else
        {
            double worst = parameters.Zip(oracle.Parameters, (a, b) => Math.Abs((double)a - b)).Max();
            Assert.True(worst <= 1e-7, $"largest difference {worst:G3} after {Steps} clipped steps");
        }
    }

    /// <summary>
    /// Shares summed as they arrive (<see cref="TrainingSession.Fold"/>) give the bits of summing them
    /// at the commit, for any number already folded; folded buffers that are not the commit's leading
    /// shares (another plan order after a re-plan) are not trusted: the commit sums from scratch.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Shares_folded_as_they_arrive_give_the_bits_of_one_commit(int folded)
    {
        var config = Config("momentum", 0);
        var once = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "fused"));
        var early = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "fused"));
        var stale = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "fused"));
        for (long step = 0; step < 4; step++)
        {
            var shares = Shares(SumsFor(step));
            var a = once.Commit(once.NextBatch(), shares, Measured, once.NowMs)!;

            var batch = early.NextBatch();
            for (int i = 0; i < folded; i++) early.Fold(batch, shares[i].GradientSum, i);
            var b = early.Commit(batch, shares, Measured, early.NowMs)!;
            Assert.Equal(a.GradNorm, b.GradNorm);
            Assert.Equal(folded > 0, b.FoldMs > 0); // reported apart from the update
            Assert.Equal(0, a.FoldMs);

            var staleBatch = stale.NextBatch();
            var others = Shares(SumsFor(step + 100));
            for (int i = 0; i < folded; i++) stale.Fold(staleBatch, others[i].GradientSum, i); // not the commit's buffers
            Assert.Equal(a.GradNorm, stale.Commit(staleBatch, shares, Measured, stale.NowMs)!.GradNorm);
        }
        Assert.Equal(once.Parameters.ToArray(), early.Parameters.ToArray());
        Assert.Equal(once.Parameters.ToArray(), stale.Parameters.ToArray());
    }

    /// <summary>A new round of the same step starts its sum again (index 0); a fold out of its place is refused, not summed.</summary>
    [Fact]
    public void A_new_round_of_the_same_step_starts_the_sum_again_and_folds_out_of_place_are_refused()
    {
        var config = Config("momentum", 0);
        var once = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "fused"));
        var again = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "fused"));
        var shares = Shares(SumsFor(0));
        once.Commit(once.NextBatch(), shares, Measured, once.NowMs);

        var batch = again.NextBatch();
        var abandoned = Shares(SumsFor(7));
        again.Fold(batch, abandoned[0].GradientSum, 0);
        again.Fold(batch, abandoned[1].GradientSum, 1); // that round never completes
        Assert.Throws<InvalidOperationException>(() => again.Fold(batch, shares[0].GradientSum, 1));
        again.Fold(batch, shares[0].GradientSum, 0); // the step's next round
        again.Fold(batch, shares[1].GradientSum, 1);
        again.Commit(batch, shares, Measured, again.NowMs);
        Assert.Equal(once.Parameters.ToArray(), again.Parameters.ToArray());
    }

    [Fact]
    public void A_NaN_in_one_shares_partial_last_vector_skips_the_step_and_names_that_share_only()
    {
        var config = Config("momentum", 0) with { MaxBadSteps = 5 };
        var collected = new List<Serilog.Events.LogEvent>();
        var logger = new Serilog.LoggerConfiguration().WriteTo.Sink(new ListSink(collected)).CreateLogger();
        var session = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(logger, "fused"));
        var sums = SumsFor(0);
        sums[1][Parameters - 1] = float.NaN; // past the last whole vector at any width
        Assert.Null(session.Commit(session.NextBatch(), Shares(sums), Measured, session.NowMs));
        Assert.Equal(Initial(), session.Parameters.ToArray()); // not applied
        var skipped = Assert.Single(collected, e => e.Properties.TryGetValue("EventType", out var t) && t.ToString() == "\"NonFiniteGradient\"");
        string culprits = skipped.Properties["NonFiniteWorkers"].ToString();
        Assert.Contains("w1", culprits);
        Assert.DoesNotContain("w0", culprits);
        Assert.DoesNotContain("w2", culprits);
    }

    /// <summary>
    /// An engine that can have shares computed again (the coordinator) is told which shares were non-finite, and when
    /// it takes them back nothing is decided: no update, no bad step counted, the batch not consumed. The same step
    /// committed with clean shares then gives the bits of a run that never saw the bad share. When the engine declines
    /// (it judges the fault the model's), the step is skipped and counted as always.
    /// </summary>
    [Fact]
    public void Non_finite_shares_beside_finite_ones_are_rejected_without_deciding_the_step()
    {
        var config = Config("momentum", 0) with { MaxBadSteps = 1 }; // a counted bad step would fail the run
        var session = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "reject"));
        var clean = new TrainingSession(config, trainSamples: 1000, Initial(), new RunEvents(Logger.None, "clean"));
        var batch = session.NextBatch();
        var poisoned = SumsFor(0);
        poisoned[2][17] = float.NaN;
        poisoned[0][Parameters - 1] = float.PositiveInfinity;
        Assert.Null(session.Commit(batch, Shares(poisoned), Measured, session.NowMs, rejectNonFinite: _ => true, out int[] rejected));
        Assert.Equal([0, 2], rejected);
        Assert.Equal(0, session.NextStep);
        Assert.Equal(Initial(), session.Parameters.ToArray());

        var again = session.Commit(batch, Shares(SumsFor(0)), Measured, session.NowMs, rejectNonFinite: _ => true, out rejected);
        Assert.NotNull(again);
        Assert.Empty(rejected);
        clean.Commit(clean.NextBatch(), Shares(SumsFor(0)), Measured, clean.NowMs);
        Assert.Equal(clean.Parameters.ToArray(), session.Parameters.ToArray());

        var allBad = SumsFor(1).Select(sum => { sum[3] = float.NaN; return sum; }).ToArray();
        int[]? offered = null;
        var failure = Assert.Throws<RunFailedException>(() =>
            session.Commit(session.NextBatch(), Shares(allBad), Measured, session.NowMs, places => { offered = places; return false; }, out _));
        Assert.Equal([0, 1, 2], offered!); // the engine was asked, and declined: skipped and counted
        Assert.Contains("1 steps in a row", failure.Message);
    }

    [Fact]
    public void An_update_that_overflows_one_parameter_in_the_partial_last_vector_fails_the_run()
    {
        var initial = Initial();
        initial[Parameters - 1] = float.MaxValue;
        var config = Config("sgd", 0) with { LearningRate = 1 };
        var session = new TrainingSession(config, trainSamples: 1000, initial, new RunEvents(Logger.None, "fused"));
        var sums = SumsFor(0);
        foreach (var sum in sums) sum[Parameters - 1] = -float.MaxValue / 4; // finite mean, finite norm; p − g overflows
        var failure = Assert.Throws<RunFailedException>(() => session.Commit(session.NextBatch(), Shares(sums), Measured, session.NowMs));
        Assert.Contains("non-finite", failure.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(17)]
    [InlineData(1001)]
    public void The_finite_check_sees_every_written_value_and_only_those(int n)
    {
        for (int bad = 0; bad < n; bad++)
        {
            var values = Enumerable.Range(0, n).Select(i => (float)i).ToArray();
            values[bad] = float.PositiveInfinity;
            Assert.False(Check(values), $"the infinity at {bad} of {n} was missed");
        }
        Assert.True(Check(Enumerable.Range(0, n).Select(i => (float)i).ToArray()));

        static bool Check(float[] values)
        {
            var check = new FlatMath.FiniteCheck();
            for (int i = 0; i + FlatMath.Width <= values.Length; i += FlatMath.Width) check.Add(FlatMath.Load(values, i));
            return check.AllFinite(values);
        }
    }

    private sealed class ListSink(List<Serilog.Events.LogEvent> events) : Serilog.Core.ILogEventSink
    {
        public void Emit(Serilog.Events.LogEvent logEvent) => events.Add(logEvent);
    }

    /// <summary>The commit written element by element from the formulas (torch.optim's, as documented on each optimizer).</summary>
    private sealed class ScalarOracle(OptimizerSettings settings, float[] initial)
    {
        public float[] Parameters { get; } = (float[])initial.Clone();
        private readonly float[] _first = new float[initial.Length];  // momentum buffer, or Adam's m
        private readonly float[] _second = new float[initial.Length]; // Adam's v
        private long _steps;

        /// <returns>The mean gradient's L2 norm.</returns>
        public double Step(float[][] sums, int[] counts, float lr, double clip)
        {
            int n = Parameters.Length, total = counts.Sum();
            var mean = new float[n];
            double squared = 0;
            for (int i = 0; i < n; i++)
            {
                float sum = sums[0][i];
                for (int k = 1; k < sums.Length; k++) sum += sums[k][i];
                mean[i] = sum / total;
                squared += (double)mean[i] * mean[i];
            }
            double norm = Math.Sqrt(squared);
            float factor = clip > 0 && norm > clip ? (float)(clip / (norm + 1e-6)) : 1f;
            long t = ++_steps;
            float wd = (float)settings.WeightDecay, mu = (float)settings.Momentum;
            float b1 = (float)settings.Beta1, b2 = (float)settings.Beta2, eps = (float)settings.Epsilon;
            float biasCorrection2Sqrt = (float)Math.Sqrt(1 - Math.Pow(b2, t));
            float minusStepSize = (float)(-lr / (1 - Math.Pow(b1, t)));
            for (int i = 0; i < n; i++)
            {
                float p = Parameters[i];
                float g = factor == 1f ? mean[i] : mean[i] * factor;
                float d = g + wd * p;
                switch (settings.Kind)
                {
                    case OptimizerKind.Sgd:
                        Parameters[i] = p + -lr * d;
                        break;
                    case OptimizerKind.Momentum:
                        float buf = t == 1 ? d : _first[i] * mu + d;
                        _first[i] = buf;
                        Parameters[i] = p + -lr * (settings.Nesterov ? d + mu * buf : buf);
                        break;
                    default:
                        float m = _first[i] + (d - _first[i]) * (1f - b1);
                        float v = _second[i] * b2 + d * d * (1f - b2);
                        _first[i] = m;
                        _second[i] = v;
                        Parameters[i] = p + minusStepSize * (m / (MathF.Sqrt(v) / biasCorrection2Sqrt + eps));
                        break;
                }
            }
            return norm;
        }
    }
}
