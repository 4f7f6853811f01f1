namespace BatchCluster.Core.Optimizers;

/// <summary>
/// An optimizer over one flat float32 parameter buffer (plain .NET, no TorchSharp, so the
/// coordinator can run anywhere). Semantics follow PyTorch's optimizers of the same name.
/// </summary>
public interface IOptimizer
{
    string Name { get; }

    /// <summary>Number of updates applied so far.</summary>
    long StepCount { get; }

    /// <summary>Applies one update: <paramref name="parameters"/> ← update(parameters, gradient, lr).</summary>
    void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate);

    /// <summary>A copy of the state, for a checkpoint.</summary>
    OptimizerState Export();

    /// <summary>Continues from <paramref name="state"/> (from <see cref="Export"/> of the same kind and size).</summary>
    void Import(OptimizerState state);
}
