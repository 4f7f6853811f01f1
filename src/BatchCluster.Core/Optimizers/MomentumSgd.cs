using System.Numerics;
using static BatchCluster.Core.Numerics.FlatMath;

namespace BatchCluster.Core.Optimizers;

/// <summary>
/// SGD with heavy-ball or Nesterov momentum, as torch.optim.SGD (dampening 0): d = g + wd·p;
/// buf ← d on the first step, else μ·buf + d; p ← p − lr·buf, or p − lr·(d + μ·buf) with Nesterov.
/// </summary>
public sealed class MomentumSgd(int parameterCount, float momentum, bool nesterov, float weightDecay) : IOptimizer
{
    private readonly float[] _buffer = new float[parameterCount];

    public string Name => nesterov ? "momentum-nesterov" : "momentum";
    public long StepCount { get; private set; }
    public IReadOnlyList<float[]> StateBuffers => [_buffer];

    public bool UpdateRange(int offset, Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate, GradientScale scale)
    {
        CheckLengths(parameters.Length, gradient.Length);
        var state = _buffer.AsSpan(offset, parameters.Length);
        var wd = new Vector<float>(weightDecay);
        var mu = new Vector<float>(momentum);
        var minusLr = new Vector<float>(-learningRate);
        var gradients = scale.Read();
        bool first = StepCount == 0;
        var finite = new FiniteCheck();
        int n = parameters.Length;
        for (int i = 0; i < n; i += Width)
        {
            var p = Load(parameters, i);
            var d = gradients.Load(gradient, i) + wd * p;
            var buf = first ? d : Load(state, i) * mu + d;
            Store(buf, state, i);
            var direction = nesterov ? d + mu * buf : buf;
            var updated = p + minusLr * direction;
            Store(updated, parameters, i);
            if (i + Width <= n) finite.Add(updated);
        }
        return finite.AllFinite(parameters);
    }

    public void CompleteStep() => StepCount++;

    public OptimizerState Export() => new(Name, StepCount, [(float[])_buffer.Clone()]);

    public void Import(OptimizerState state)
    {
        OptimizerStates.Check(state, Name, 1, _buffer.Length);
        state.Buffers[0].CopyTo(_buffer, 0);
        StepCount = state.StepCount;
    }
}
