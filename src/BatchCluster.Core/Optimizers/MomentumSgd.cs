using System.Numerics.Tensors;

namespace BatchCluster.Core.Optimizers;

/// <summary>
/// SGD with heavy-ball or Nesterov momentum, exactly as torch.optim.SGD (dampening 0):
/// d = g + wd·p; buf ← d on the first step, else μ·buf + d; step direction buf, or d + μ·buf with Nesterov.
/// </summary>
public sealed class MomentumSgd(int parameterCount, float momentum, bool nesterov, float weightDecay) : IOptimizer
{
    private readonly float[] _buffer = new float[parameterCount];
    private readonly float[] _decayed = new float[parameterCount];
    private readonly float[] _nesterov = nesterov ? new float[parameterCount] : [];

    public string Name => nesterov ? "momentum-nesterov" : "momentum";
    public long StepCount { get; private set; }
    public ReadOnlySpan<float> MomentumBuffer => _buffer;

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        ReadOnlySpan<float> d = WeightDecay.Apply(parameters, gradient, weightDecay, _decayed);
        if (StepCount == 0) d.CopyTo(_buffer);
        else TensorPrimitives.MultiplyAdd(_buffer, momentum, d, _buffer);

        ReadOnlySpan<float> direction = _buffer;
        if (nesterov)
        {
            TensorPrimitives.MultiplyAdd(_buffer, momentum, d, _nesterov);
            direction = _nesterov;
        }
        TensorPrimitives.MultiplyAdd(direction, -learningRate, parameters, parameters);
        StepCount++;
    }
}
