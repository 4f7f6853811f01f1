namespace BatchCluster.Core.Optimizers;

/// <summary>
/// An optimizer over one flat float32 parameter buffer (plain .NET, no TorchSharp, so the
/// coordinator can run anywhere). Semantics follow PyTorch's optimizers of the same name.
/// <para>An update may be applied range by range (a ring reduction hands the coordinator the
/// model shard by shard): <see cref="UpdateRange"/> for disjoint ranges that together cover the
/// model, then <see cref="CompleteStep"/> once. Every operation is element-wise and rounds like its
/// scalar form, so any cut into ranges gives the same bits as one range over the whole model.</para>
/// </summary>
public interface IOptimizer
{
    string Name { get; }

    /// <summary>Number of updates applied so far (completed steps).</summary>
    long StepCount { get; }

    /// <summary>
    /// Applies update number <see cref="StepCount"/> + 1 to the model's range starting at
    /// <paramref name="offset"/>: <paramref name="parameters"/> ← update(parameters, g, lr) with
    /// g = <paramref name="scale"/> applied to <paramref name="gradient"/>, reading and writing the
    /// optimizer's state of the same range, in one pass over memory.
    /// </summary>
    /// <returns>Whether every parameter of the range is finite after the update (checked as it is written).</returns>
    bool UpdateRange(int offset, Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate, GradientScale scale);

    /// <summary>Every range of the update has been applied: the step counts.</summary>
    void CompleteStep();

    /// <summary>The per-parameter state (momentum, moments), each as long as the model; read and restored by range (undoing an unfinished update).</summary>
    IReadOnlyList<float[]> StateBuffers { get; }

    /// <summary>A copy of the state, for a checkpoint.</summary>
    OptimizerState Export();

    /// <summary>Continues from <paramref name="state"/> (from <see cref="Export"/> of the same kind and size).</summary>
    void Import(OptimizerState state);
}

public static class OptimizerExtensions
{
    /// <summary>One whole update: <paramref name="parameters"/> ← update(parameters, gradient, lr) over the whole model.</summary>
    /// <returns>Whether every parameter is finite after the update.</returns>
    public static bool Step(this IOptimizer optimizer, Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        bool finite = optimizer.UpdateRange(0, parameters, gradient, learningRate, GradientScale.None);
        optimizer.CompleteStep();
        return finite;
    }
}
