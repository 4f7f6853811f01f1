using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Sampling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BatchCluster.Core.Tests.Optimizers;

/// <summary>
/// Core's flat-buffer optimizers against TorchSharp's own optim.SGD / optim.Adam, fed the same
/// gradient sequence (a loss Σ p·g has gradient g exactly).
///
/// Tolerance 2e-6 absolute on parameters of size ~1 after 25 steps: both sides compute the same
/// float32 formula, but may order or fuse the operations differently (e.g. FMA vs multiply-add),
/// each costing up to ~1 ulp (6e-8) per operation; a handful of operations per step over 25
/// steps stays well inside 2e-6, while any real difference in the update rule (a wrong bias
/// correction, momentum or decay term) is larger than 1e-3 already after a few steps.
/// </summary>
public class OptimizersMatchTorchTests
{
    private const int Size = 257;
    private const int Steps = 25;
    private const double Tolerance = 2e-6;

    private static float[] Vector(SplitMix64 rng, double scale) =>
        Enumerable.Range(0, Size).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray();

    private static (float[] Ours, float[] Torch) RunBoth(IOptimizer ours, Func<Parameter, optim.Optimizer> makeTorch, float lr)
    {
        var rng = new SplitMix64(2024);
        float[] start = Vector(rng, 1.0);
        float[] gradients = Enumerable.Range(0, Steps).SelectMany(_ => Vector(rng, 0.5)).ToArray();

        var mine = (float[])start.Clone();
        for (int s = 0; s < Steps; s++)
            ours.Step(mine, gradients.AsSpan(s * Size, Size), lr);

        using var p = new Parameter(tensor(start));
        var optimizer = makeTorch(p);
        for (int s = 0; s < Steps; s++)
        {
            optimizer.zero_grad();
            using var g = tensor(gradients.AsSpan(s * Size, Size).ToArray());
            using var loss = (p * g).sum();
            loss.backward();
            optimizer.step();
        }
        return (mine, p.data<float>().ToArray());
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - (double)a)).Max();
        Assert.True(worst <= Tolerance, $"max |difference| {worst:E3} exceeds {Tolerance:E1}");
        // The runs must actually have moved the parameters (a vacuous comparison proves nothing).
        Assert.NotEqual(Vector(new SplitMix64(2024), 1.0), actual);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.01)]
    public void Sgd_matches_torch(double weightDecay)
    {
        var (ours, theirs) = RunBoth(new Sgd((float)weightDecay),
            p => optim.SGD([p], 0.1, weight_decay: weightDecay), 0.1f);
        AssertClose(ours, theirs);
    }

    [Theory]
    [InlineData(false, 0.0)]
    [InlineData(false, 0.01)]
    [InlineData(true, 0.0)]
    [InlineData(true, 0.01)]
    public void Momentum_matches_torch(bool nesterov, double weightDecay)
    {
        var (ours, theirs) = RunBoth(new MomentumSgd(Size, 0.9f, nesterov, (float)weightDecay),
            p => optim.SGD([p], 0.05, momentum: 0.9, weight_decay: weightDecay, nesterov: nesterov), 0.05f);
        AssertClose(ours, theirs);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.01)]
    public void Adam_matches_torch(double weightDecay)
    {
        var (ours, theirs) = RunBoth(new BatchCluster.Core.Optimizers.Adam(Size, 0.9f, 0.999f, 1e-8f, (float)weightDecay),
            p => optim.Adam([p], 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: weightDecay), 0.01f);
        AssertClose(ours, theirs);
    }

    [Fact]
    public void Settings_create_the_named_optimizer()
    {
        Assert.Equal("sgd", new OptimizerSettings(OptimizerKind.Sgd).Create(3).Name);
        Assert.Equal("momentum-nesterov", new OptimizerSettings(OptimizerKind.Momentum, Nesterov: true).Create(3).Name);
        Assert.Equal("adam", new OptimizerSettings(OptimizerKind.Adam).Create(3).Name);
    }
}
