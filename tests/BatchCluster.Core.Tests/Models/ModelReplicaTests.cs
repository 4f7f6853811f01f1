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
}
