using System.Numerics.Tensors;

namespace BatchCluster.Core.Optimizers;

/// <summary>L2 weight decay folded into the gradient, as PyTorch's SGD and Adam do: g + wd·p.</summary>
internal static class WeightDecay
{
    /// <returns>The gradient itself when wd is 0, otherwise <paramref name="scratch"/> holding g + wd·p.</returns>
    public static ReadOnlySpan<float> Apply(ReadOnlySpan<float> parameters, ReadOnlySpan<float> gradient, float weightDecay, Span<float> scratch)
    {
        if (weightDecay == 0f) return gradient;
        TensorPrimitives.MultiplyAdd(parameters, weightDecay, gradient, scratch);
        return scratch;
    }
}
