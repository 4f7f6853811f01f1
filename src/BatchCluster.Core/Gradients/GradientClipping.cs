using System.Numerics.Tensors;

namespace BatchCluster.Core.Gradients;

/// <summary>Global L2-norm clipping of the averaged gradient, as torch.nn.utils.clip_grad_norm_ does.</summary>
public static class GradientClipping
{
    /// <returns>The norm before clipping.</returns>
    public static double ClipInPlace(Span<float> gradient, double maxNorm)
    {
        double norm = L2Norm(gradient);
        if (maxNorm > 0 && norm > maxNorm)
            TensorPrimitives.Multiply(gradient, (float)(maxNorm / (norm + 1e-6)), gradient);
        return norm;
    }

    public static double L2Norm(ReadOnlySpan<float> values) => Math.Sqrt(SquaredNorm(values));

    /// <summary>Σ x², accumulated in double in chunks so large vectors keep their precision.</summary>
    public static double SquaredNorm(ReadOnlySpan<float> values)
    {
        const int chunk = 4096;
        double total = 0;
        for (int start = 0; start < values.Length; start += chunk)
            total += TensorPrimitives.SumOfSquares(values.Slice(start, Math.Min(chunk, values.Length - start)));
        return total;
    }
}
