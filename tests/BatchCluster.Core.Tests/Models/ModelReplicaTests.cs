using BatchCluster.Core.Data;
using BatchCluster.Core.Models;

namespace BatchCluster.Core.Tests.Models;

public class ModelReplicaTests
{
    private static readonly DataSplits Data = SyntheticImages.Create(seed: 3, trainCount: 300, validationCount: 50, testCount: 50);

    [Fact]
    public void Mlp_parameter_order_is_the_documented_one()
    {
        var layout = ModelFactory.LayoutOf(ModelSpec.Mlp());
        Assert.Equal(
            new[] { new long[] { 256, 784 }, [256], [10, 256], [10] },
            layout.Entries.Select(e => e.Shape));
        Assert.Equal(203_530, layout.TotalCount);
        Assert.Equal(new[] { 0, 200_704, 200_960, 203_520 }, layout.Entries.Select(e => e.Offset));
    }

    [Fact]
    public void Parameters_round_trip_through_the_flat_buffer()
    {
        using var replica = new ModelReplica(ModelSpec.Mlp(32));
        var values = Enumerable.Range(0, replica.ParameterCount).Select(i => (float)Math.Sin(i)).ToArray();
        replica.LoadParameters(values);
        var back = new float[values.Length];
        replica.CopyParametersTo(back);
        Assert.Equal(values, back);
    }

    [Fact]
    public void Initial_parameters_depend_only_on_the_seed()
    {
        Assert.Equal(ModelFactory.InitialParameters(ModelSpec.Mlp(16), 5), ModelFactory.InitialParameters(ModelSpec.Mlp(16), 5));
        Assert.NotEqual(ModelFactory.InitialParameters(ModelSpec.Mlp(16), 5), ModelFactory.InitialParameters(ModelSpec.Mlp(16), 6));
    }

    /// <summary>
    /// Micro-batching must not change the gradient: the sum over 100 samples in micro-batches of 7
    /// equals the sum in one pass. Tolerance: float32 sums of ~100 terms of size ≤ ~1 reorder with
    /// errors of a few ulp of the total; 1e-4 relative to the largest entry is ample and still far
    /// below the 1/100 change that dropping or double counting one sample would cause.
    /// </summary>
    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    public void Micro_batches_accumulate_to_the_full_batch_gradient_sum(string model)
    {
        var spec = model == "mlp" ? ModelSpec.Mlp(64) : ModelSpec.Cnn(batchNorm: false);
        using var replica = new ModelReplica(spec);
        replica.LoadParameters(ModelFactory.InitialParameters(spec, 11));
        int[] ids = Enumerable.Range(100, 100).ToArray();
        var whole = replica.ComputeGradientSum(Data.Train, ids, 100, new float[replica.ParameterCount]);
        var pieces = replica.ComputeGradientSum(Data.Train, ids, 7, new float[replica.ParameterCount]);
        Assert.Equal(100, pieces.SampleCount);
        Assert.Equal(whole.LossSum, pieces.LossSum, 2);
        double scale = whole.GradientSum.ToArray().Max(Math.Abs);
        double worst = whole.GradientSum.ToArray().Zip(pieces.GradientSum.ToArray(), (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-4 * scale, $"max difference {worst:E3} vs largest entry {scale:E3}");
        Assert.True(scale > 0);
    }

    /// <summary>
    /// The share's squared norm is taken while the gradient is copied out, block by block and tensor
    /// by tensor: the same value as a pass over the finished buffer up to summation order (squares
    /// exact in double, ~10⁵ terms: ≤ 1e-11 relative), and still non-finite for a non-finite gradient.
    /// </summary>
    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    public void The_squared_norm_taken_while_copying_equals_a_pass_over_the_gradient(string model)
    {
        var spec = model == "mlp" ? ModelSpec.Mlp() : ModelSpec.Cnn(batchNorm: false);
        using var replica = new ModelReplica(spec);
        replica.LoadParameters(ModelFactory.InitialParameters(spec, 4));
        var share = replica.ComputeGradientSum(Data.Train, Enumerable.Range(0, 40).ToArray(), 40, new float[replica.ParameterCount]);
        double pass = BatchCluster.Core.Numerics.FlatMath.SquaredNorm(share.GradientSum.Span);
        Assert.True(pass > 0);
        Assert.True(Math.Abs(share.GradientSumSquaredNorm - pass) <= 1e-11 * pass, $"{share.GradientSumSquaredNorm:R} vs {pass:R}");

        var poisoned = ModelFactory.InitialParameters(spec, 4);
        poisoned[^1] = float.NaN; // the last bias: its gradient is NaN for every sample
        replica.LoadParameters(poisoned);
        var bad = replica.ComputeGradientSum(Data.Train, Enumerable.Range(0, 40).ToArray(), 40, new float[replica.ParameterCount]);
        Assert.False(double.IsFinite(bad.GradientSumSquaredNorm));
    }

    [Fact]
    public void Evaluation_counts_every_sample_once_and_restores_training_mode()
    {
        using var replica = new ModelReplica(ModelSpec.Cnn(batchNorm: true));
        replica.LoadParameters(ModelFactory.InitialParameters(replica.Spec, 2));
        var all = replica.Evaluate(Data.Validation, 0, 50, batchSize: 16);
        var split = replica.Evaluate(Data.Validation, 0, 20).Add(replica.Evaluate(Data.Validation, 20, 30));
        Assert.Equal(50, all.Count);
        Assert.Equal(all.Correct, split.Correct);
        Assert.Equal(all.LossSum, split.LossSum, 3);
        Assert.InRange(all.Accuracy, 0.0, 1.0);
    }

    private static (float[] Gradient, float[] Sums) Share(ModelReplica replica, int from, int count, int microBatch)
    {
        var share = replica.ComputeGradientSum(Data.Train, Enumerable.Range(from, count).ToArray(), microBatch, new float[replica.ParameterCount]);
        return (share.GradientSum.ToArray(), share.BatchNormSums ?? []);
    }

    private static double WorstRelative(float[] expected, float[] actual)
    {
        double scale = expected.Max(Math.Abs);
        return expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max() / scale;
    }

    private static float[] Add(float[] a, float[] b) => a.Zip(b, (x, y) => x + y).ToArray();

    /// <summary>
    /// Ghost batch norm (docs/batch-norm.md) on one replica: 64 samples with ghost batches of 16 give the same gradient sum and the
    /// same sums of batch-norm statistics whether computed in one pass or as two shares of 32 in micro-batches of 16 (float
    /// rounding only: 1e-4 of the largest entry, the tolerance of the micro-batch test above); without ghost batches the same
    /// two cuts differ by far more, which is what the layout did to every batch-norm run before. A ghost batch of the whole
    /// share is PyTorch's own batch norm.
    /// </summary>
    [Fact]
    public void Ghost_batches_make_the_gradient_independent_of_how_the_batch_is_cut()
    {
        var spec = ModelSpec.Cnn(batchNorm: true);
        var parameters = ModelFactory.InitialParameters(spec, 9);
        using var plain = new ModelReplica(spec);
        plain.LoadParameters(parameters);
        var whole = Share(plain, 0, 64, 64);
        var cut = Add(Share(plain, 0, 32, 32).Gradient, Share(plain, 32, 32, 32).Gradient);
        double layoutEffect = WorstRelative(whole.Gradient, cut);
        Assert.Empty(whole.Sums);

        using var ghosts = new ModelReplica(spec);
        ghosts.LoadParameters(parameters);
        ghosts.UseGhostBatches(16);
        var one = Share(ghosts, 0, 64, 64);
        var first = Share(ghosts, 0, 32, 16);
        var second = Share(ghosts, 32, 32, 16);
        double ghostEffect = WorstRelative(one.Gradient, Add(first.Gradient, second.Gradient));
        double sums = WorstRelative(one.Sums, Add(first.Sums, second.Sums));
        Assert.Equal(RunningStatistics.Length(spec), one.Sums.Length);
        Assert.True(ghostEffect <= 1e-4, $"ghost batches: the two cuts differ by {ghostEffect:E2} of the largest entry");
        Assert.True(sums <= 1e-5, $"the sums of batch-norm statistics differ by {sums:E2}");
        Assert.True(layoutEffect > 100 * ghostEffect, $"without ghost batches the cuts differ by {layoutEffect:E2}, with them by {ghostEffect:E2}");

        using var wholeGhost = new ModelReplica(spec);
        wholeGhost.LoadParameters(parameters);
        wholeGhost.UseGhostBatches(64);
        Assert.True(WorstRelative(whole.Gradient, Share(wholeGhost, 0, 64, 64).Gradient) <= 1e-5);
    }

    /// <summary>
    /// The statistics a share returns are each ghost batch's per-channel mean and UNBIASED variance (PyTorch's running_var), summed:
    /// checked against the first batch-norm layer computed by hand from the conv's output for one ghost batch.
    /// </summary>
    [Fact]
    public void A_ghost_batchs_statistics_are_its_channel_means_and_unbiased_variances()
    {
        var spec = ModelSpec.Cnn(batchNorm: true);
        using var replica = new ModelReplica(spec);
        replica.LoadParameters(ModelFactory.InitialParameters(spec, 3));
        replica.UseGhostBatches(8);
        var sums = Share(replica, 0, 8, 8).Sums;
        var (means, variances) = FirstConvolutionStatistics(ModelFactory.InitialParameters(spec, 3), 8);
        for (int c = 0; c < means.Length; c++)
        {
            Assert.Equal(means[c], sums[c], 1e-5);
            Assert.Equal(variances[c], sums[means.Length + c], 1e-5 * Math.Max(1, variances[c]));
        }
    }

    /// <summary>
    /// Per channel of the first conv (1→32, 3×3, padding 1, no bias: its weights lead the flat parameters), the mean and the
    /// unbiased variance of its outputs over the first <paramref name="images"/> training images and all 28×28 positions.
    /// </summary>
    private static (double[] Means, double[] Variances) FirstConvolutionStatistics(float[] parameters, int images)
    {
        const int Channels = 32, Side = 28;
        var means = new double[Channels];
        var variances = new double[Channels];
        for (int c = 0; c < Channels; c++)
        {
            var outputs = new List<double>();
            for (int n = 0; n < images; n++)
            {
                var pixels = Data.Train.Image(n);
                for (int y = 0; y < Side; y++)
                for (int x = 0; x < Side; x++)
                {
                    double sum = 0;
                    for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int yy = y + dy, xx = x + dx;
                        if (yy < 0 || yy >= Side || xx < 0 || xx >= Side) continue;
                        sum += parameters[c * 9 + (dy + 1) * 3 + dx + 1] * (pixels[yy * Side + xx] / 255.0);
                    }
                    outputs.Add(sum);
                }
            }
            means[c] = outputs.Average();
            variances[c] = outputs.Sum(v => (v - means[c]) * (v - means[c])) / (outputs.Count - 1);
        }
        return (means, variances);
    }

    [Fact]
    public void A_share_that_is_not_whole_ghost_batches_is_refused()
    {
        using var replica = new ModelReplica(ModelSpec.Cnn(batchNorm: true));
        replica.UseGhostBatches(16);
        Assert.Throws<ArgumentException>(() => Share(replica, 0, 24, 24));
        Assert.Throws<ArgumentException>(() => Share(replica, 0, 32, 24));
        Assert.Throws<ArgumentOutOfRangeException>(() => replica.UseGhostBatches(1));
        using var mlp = new ModelReplica(ModelSpec.Mlp(16));
        Assert.Throws<InvalidOperationException>(() => mlp.UseGhostBatches(16));
    }
}
