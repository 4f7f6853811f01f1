using System.Numerics.Tensors;

namespace BatchCluster.Core.Optimizers;

/// <summary>Plain SGD: p ← p − lr·(g + wd·p).</summary>
public sealed class Sgd(int parameterCount, float weightDecay) : IOptimizer
{
    private readonly float[] _decayed = new float[parameterCount];

    public string Name => "sgd";
    public long StepCount { get; private set; }

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        ReadOnlySpan<float> direction = WeightDecay.Apply(parameters, gradient, weightDecay, _decayed);
        TensorPrimitives.MultiplyAdd(direction, -learningRate, parameters, parameters);
        StepCount++;
    }
}
