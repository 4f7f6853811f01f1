using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;

namespace BatchCluster.Gpu.Tests;

/// <summary>
/// The ILGPU MLP on ILGPU's CPU accelerator (the kernels a GPU runs) against TorchSharp's replica
/// from the same parameters and samples. Float32 sums in another order differ by rounding only:
/// relative differences of a few 1e-7; the bound, 1e-5 of the largest value, is the issue's.
/// </summary>
public sealed class IlgpuMlpReplicaTests : IDisposable
{
    private const double Relative = 1e-5;
    private static readonly DataSplits Data = SyntheticImages.Create(seed: 3, trainCount: 300, validationCount: 50, testCount: 50);
    private readonly IlgpuDevice _device = IlgpuDevice.Open("ilgpu-cpu");

    public IlgpuMlpReplicaTests() => TorchRuntime.Initialise(1);

    public void Dispose() => _device.Dispose();

    private static (float[] Gradient, double Loss) Reference(ModelSpec spec, float[] parameters, int[] ids, int microBatch)
    {
        using var replica = new ModelReplica(spec);
        replica.LoadParameters(parameters);
        var gradient = new float[replica.ParameterCount];
        var share = replica.ComputeGradientSum(Data.Train, ids, microBatch, gradient);
        return (gradient, share.LossSum);
    }

    private static double RelativeDifference(float[] expected, float[] actual)
    {
        double scale = expected.Max(v => Math.Abs(v));
        return expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max() / scale;
    }

    [Theory]
    [InlineData(new[] { 16, 12 }, 50, 7)] // two hidden layers, micro-batches of 7 (the last one 1)
    [InlineData(new[] { 256 }, 40, 40)] // the default MLP, one pass
    public void A_shares_gradient_sum_and_loss_match_TorchSharp(int[] hidden, int samples, int microBatch)
    {
        var spec = ModelSpec.Mlp(hidden);
        var parameters = ModelFactory.InitialParameters(spec, seed: 11);
        var ids = Enumerable.Range(0, samples).Select(i => (i * 37) % Data.Train.Count).ToArray();
        var (expected, expectedLoss) = Reference(spec, parameters, ids, microBatch);

        using var replica = new IlgpuMlpReplica(spec, _device);
        Assert.Equal(expected.Length, replica.ParameterCount);
        replica.LoadParameters(parameters);
        var gradient = new float[replica.ParameterCount];
        var share = replica.ComputeGradientSum(Data.Train, ids, microBatch, gradient);

        double worst = RelativeDifference(expected, gradient);
        Assert.True(worst <= Relative, $"gradient differs by {worst:E2} of its largest value");
        Assert.Equal(samples, share.SampleCount);
        Assert.True(Math.Abs(share.LossSum - expectedLoss) <= Relative * Math.Abs(expectedLoss), $"loss sum {share.LossSum} vs {expectedLoss}");
        Assert.Equal(Core.Numerics.FlatMath.SquaredNorm(gradient), share.GradientSumSquaredNorm);
    }

    [Fact]
    public void The_same_share_gives_the_same_bits_and_micro_batching_changes_only_rounding()
    {
        var spec = ModelSpec.Mlp(24);
        using var replica = new IlgpuMlpReplica(spec, _device);
        replica.LoadParameters(ModelFactory.InitialParameters(spec, seed: 5));
        var ids = Enumerable.Range(100, 45).ToArray();
        float[] first = new float[replica.ParameterCount], again = new float[replica.ParameterCount], split = new float[replica.ParameterCount];
        replica.ComputeGradientSum(Data.Train, ids, 45, first);
        replica.ComputeGradientSum(Data.Train, ids, 45, again);
        replica.ComputeGradientSum(Data.Train, ids, 8, split);
        Assert.Equal(first, again); // no atomics: a function of its inputs
        Assert.True(RelativeDifference(first, split) <= Relative);
    }

    [Fact]
    public void Evaluation_counts_equal_TorchSharps_and_its_loss_matches()
    {
        var spec = ModelSpec.Mlp(32);
        var parameters = ModelFactory.InitialParameters(spec, seed: 2);
        using var torch = new ModelReplica(spec);
        torch.LoadParameters(parameters);
        using var ilgpu = new IlgpuMlpReplica(spec, _device);
        ilgpu.LoadParameters(parameters);
        var rows = Enumerable.Range(0, Data.Validation.Count).ToArray();
        var expected = torch.Evaluate(Data.Validation, rows, batchSize: 20);
        var actual = ilgpu.Evaluate(Data.Validation, rows, batchSize: 20);
        Assert.Equal(expected.Correct, actual.Correct);
        Assert.Equal(expected.Count, actual.Count);
        Assert.True(Math.Abs(expected.LossSum - actual.LossSum) <= Relative * expected.LossSum, $"loss {actual.LossSum} vs {expected.LossSum}");
    }

    [Fact]
    public void Other_models_are_refused_with_the_ones_it_runs()
    {
        var e = Assert.Throws<NotSupportedException>(() => new IlgpuMlpReplica(ModelSpec.Cnn(batchNorm: false), _device));
        Assert.Equal("the ILGPU backend runs the MLP only (--model mlp); 'cnn' needs --device cpu", e.Message);
    }
}
