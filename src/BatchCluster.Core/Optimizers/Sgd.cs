using System.Numerics;
using static BatchCluster.Core.Numerics.FlatMath;

namespace BatchCluster.Core.Optimizers;

/// <summary>Plain SGD as torch.optim.SGD without momentum: d = g + wd·p; p ← p − lr·d. One pass.</summary>
public sealed class Sgd(float weightDecay) : IOptimizer
{
    public string Name => "sgd";
    public long StepCount { get; private set; }
    public IReadOnlyList<float[]> StateBuffers => [];

    public void UpdateRange(int offset, Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        CheckLengths(parameters.Length, gradient.Length);
        var wd = new Vector<float>(weightDecay);
        var minusLr = new Vector<float>(-learningRate);
        for (int i = 0; i < parameters.Length; i += Width)
        {
            var p = Load(parameters, i);
            var d = Load(gradient, i) + wd * p;
            Store(p + minusLr * d, parameters, i);
        }
    }

    public void CompleteStep() => StepCount++;

    public OptimizerState Export() => new(Name, StepCount, []);

    public void Import(OptimizerState state)
    {
        OptimizerStates.Check(state, Name, 0, 0);
        StepCount = state.StepCount;
    }
}
