using BatchCluster.Core.Numerics;

namespace BatchCluster.Core.Gradients;

/// <summary>Global L2-norm clipping of the averaged gradient, as torch.nn.utils.clip_grad_norm_ does.</summary>
public static class GradientClipping
{
    /// <returns>The norm before clipping.</returns>
    public static double ClipInPlace(Span<float> gradient, double maxNorm) => ClipInPlace(gradient, maxNorm, L2Norm(gradient));

    /// <param name="norm">The gradient's L2 norm, already computed.</param>
    public static double ClipInPlace(Span<float> gradient, double maxNorm, double norm)
    {
        float factor = Factor(norm, maxNorm);
        if (factor != 1f) FlatMath.ScaleInPlace(gradient, factor);
        return norm;
    }

    /// <summary>What the gradient is multiplied by: maxNorm / (norm + 1e-6) when the norm exceeds <paramref name="maxNorm"/> (> 0), else 1.</summary>
    public static float Factor(double norm, double maxNorm) =>
        maxNorm > 0 && norm > maxNorm ? (float)(maxNorm / (norm + 1e-6)) : 1f;

    public static double L2Norm(ReadOnlySpan<float> values) => Math.Sqrt(FlatMath.SquaredNorm(values));
}
