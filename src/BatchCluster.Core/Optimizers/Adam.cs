using System.Numerics.Tensors;

namespace BatchCluster.Core.Optimizers;

/// <summary>
/// Adam with L2 weight decay, following torch.optim.Adam's single-tensor update:
/// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
/// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
/// </summary>
public sealed class Adam(int parameterCount, float beta1, float beta2, float epsilon, float weightDecay) : IOptimizer
{
    private readonly float[] _m = new float[parameterCount];
    private readonly float[] _v = new float[parameterCount];
    private readonly float[] _decayed = new float[parameterCount];
    private readonly float[] _scratch = new float[parameterCount];

    public string Name => "adam";
    public long StepCount { get; private set; }

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        StepCount++;
        ReadOnlySpan<float> g = WeightDecay.Apply(parameters, gradient, weightDecay, _decayed);

        // m = β1·m + (1−β1)·g, written as m + (g − m)·(1−β1) the way PyTorch's lerp_ does.
        TensorPrimitives.Subtract(g, _m, _scratch);
        TensorPrimitives.MultiplyAdd(_scratch, 1f - beta1, _m, _m);
        // v = β2·v + (1−β2)·g²
        TensorPrimitives.Multiply(_v, beta2, _v);
        TensorPrimitives.Multiply(g, g, _scratch);
        TensorPrimitives.MultiplyAdd(_scratch, 1f - beta2, _v, _v);

        double biasCorrection1 = 1 - Math.Pow(beta1, StepCount);
        double biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(beta2, StepCount));
        float stepSize = (float)(learningRate / biasCorrection1);

        TensorPrimitives.Sqrt(_v, _scratch);
        TensorPrimitives.Divide(_scratch, (float)biasCorrection2Sqrt, _scratch);
        TensorPrimitives.Add(_scratch, epsilon, _scratch);
        TensorPrimitives.Divide(_m, _scratch, _scratch);
        TensorPrimitives.MultiplyAdd(_scratch, -stepSize, parameters, parameters);
    }
}
