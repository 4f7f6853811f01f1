using System.Numerics;
using static BatchCluster.Core.Numerics.FlatMath;

namespace BatchCluster.Core.Optimizers;

/// <summary>
/// Adam with L2 weight decay, following torch.optim.Adam's single-tensor update, in one pass:
/// g = grad + wd·p; m ← m + (g − m)(1−β1); v ← β2·v + (1−β2)·g²;
/// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
/// </summary>
public sealed class Adam(int parameterCount, float beta1, float beta2, float epsilon, float weightDecay) : IOptimizer
{
    private readonly float[] _m = new float[parameterCount];
    private readonly float[] _v = new float[parameterCount];

    public string Name => "adam";
    public long StepCount { get; private set; }

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        CheckLengths(parameters.Length, gradient.Length);
        CheckLengths(parameters.Length, _m.Length);
        StepCount++;
        var wd = new Vector<float>(weightDecay);
        var oneMinusBeta1 = new Vector<float>(1f - beta1);
        var beta2V = new Vector<float>(beta2);
        var oneMinusBeta2 = new Vector<float>(1f - beta2);
        var eps = new Vector<float>(epsilon);
        var biasCorrection2Sqrt = new Vector<float>((float)Math.Sqrt(1 - Math.Pow(beta2, StepCount)));
        var minusStepSize = new Vector<float>((float)(-learningRate / (1 - Math.Pow(beta1, StepCount))));
        for (int i = 0; i < parameters.Length; i += Width)
        {
            var p = Load(parameters, i);
            var g = Load(gradient, i) + wd * p;
            var m = Load(_m, i);
            m += (g - m) * oneMinusBeta1;
            var v = Load(_v, i) * beta2V + g * g * oneMinusBeta2;
            Store(m, _m, i);
            Store(v, _v, i);
            var denominator = Vector.SquareRoot(v) / biasCorrection2Sqrt + eps;
            Store(p + minusStepSize * (m / denominator), parameters, i);
        }
    }

    public OptimizerState Export() => new(Name, StepCount, [(float[])_m.Clone(), (float[])_v.Clone()]);

    public void Import(OptimizerState state)
    {
        OptimizerStates.Check(state, Name, 2, _m.Length);
        state.Buffers[0].CopyTo(_m, 0);
        state.Buffers[1].CopyTo(_v, 0);
        StepCount = state.StepCount;
    }
}
