using System.Numerics;
using static BatchCluster.Core.Numerics.FlatMath;

namespace BatchCluster.Core.Optimizers;

/// <summary>
/// Adam with L2 weight decay, following torch.optim.Adam's single-tensor update, in one pass:
/// g = grad + wd·p; m ← m + (g − m)(1−β1); v ← β2·v + (1−β2)·g²;
/// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε), with t the number of this update.
/// </summary>
public sealed class Adam(int parameterCount, float beta1, float beta2, float epsilon, float weightDecay) : IOptimizer
{
    private readonly float[] _m = new float[parameterCount];
    private readonly float[] _v = new float[parameterCount];

    public string Name => "adam";
    public long StepCount { get; private set; }
    public IReadOnlyList<float[]> StateBuffers => [_m, _v];

    public bool UpdateRange(int offset, Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate, GradientScale scale)
    {
        CheckLengths(parameters.Length, gradient.Length);
        var ms = _m.AsSpan(offset, parameters.Length);
        var vs = _v.AsSpan(offset, parameters.Length);
        long t = StepCount + 1;
        var wd = new Vector<float>(weightDecay);
        var oneMinusBeta1 = new Vector<float>(1f - beta1);
        var beta2V = new Vector<float>(beta2);
        var oneMinusBeta2 = new Vector<float>(1f - beta2);
        var eps = new Vector<float>(epsilon);
        var biasCorrection2Sqrt = new Vector<float>((float)Math.Sqrt(1 - Math.Pow(beta2, t)));
        var minusStepSize = new Vector<float>((float)(-learningRate / (1 - Math.Pow(beta1, t))));
        var gradients = scale.Read();
        var finite = new FiniteCheck();
        int n = parameters.Length;
        for (int i = 0; i < n; i += Width)
        {
            var p = Load(parameters, i);
            var g = gradients.Load(gradient, i) + wd * p;
            var m = Load(ms, i);
            m += (g - m) * oneMinusBeta1;
            var v = Load(vs, i) * beta2V + g * g * oneMinusBeta2;
            Store(m, ms, i);
            Store(v, vs, i);
            var denominator = Vector.SquareRoot(v) / biasCorrection2Sqrt + eps;
            var updated = p + minusStepSize * (m / denominator);
            Store(updated, parameters, i);
            if (i + Width <= n) finite.Add(updated);
        }
        return finite.AllFinite(parameters);
    }

    public void CompleteStep() => StepCount++;

    public OptimizerState Export() => new(Name, StepCount, [(float[])_m.Clone(), (float[])_v.Clone()]);

    public void Import(OptimizerState state)
    {
        OptimizerStates.Check(state, Name, 2, _m.Length);
        state.Buffers[0].CopyTo(_m, 0);
        state.Buffers[1].CopyTo(_v, 0);
        StepCount = state.StepCount;
    }
}
