using System.Numerics;
using static BatchCluster.Core.Numerics.FlatMath;

namespace BatchCluster.Core.Optimizers;

/// <summary>Plain SGD as torch.optim.SGD without momentum: d = g + wd·p; p ← p − lr·d. One pass.</summary>
public sealed class Sgd(float weightDecay) : IOptimizer
{
    public string Name => "sgd";
    public long StepCount { get; private set; }
    public IReadOnlyList<float[]> StateBuffers => [];

    public bool UpdateRange(int offset, Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate, GradientScale scale)
    {
        CheckLengths(parameters.Length, gradient.Length);
        var wd = new Vector<float>(weightDecay);
        var minusLr = new Vector<float>(-learningRate);
        var gradients = scale.Read();
        var finite = new FiniteCheck();
        int n = parameters.Length;
        for (int i = 0; i < n; i += Width)
        {
            var p = Load(parameters, i);
            var d = gradients.Load(gradient, i) + wd * p;
            var updated = p + minusLr * d;
            Store(updated, parameters, i);
            if (i + Width <= n) finite.Add(updated);
        }
        return finite.AllFinite(parameters);
    }

    public void CompleteStep() => StepCount++;

    public OptimizerState Export() => new(Name, StepCount, []);

    public void Import(OptimizerState state)
    {
        OptimizerStates.Check(state, Name, 0, 0);
        StepCount = state.StepCount;
    }
}
