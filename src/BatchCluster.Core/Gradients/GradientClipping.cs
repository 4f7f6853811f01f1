using BatchCluster.Core.Numerics;

namespace BatchCluster.Core.Gradients;

/// <summary>Global L2-norm clipping of the averaged gradient, as torch.nn.utils.clip_grad_norm_ does.</summary>
public static class GradientClipping
{
    /// <summary>What the gradient is multiplied by: maxNorm / (norm + 1e-6) when the norm exceeds <paramref name="maxNorm"/> (> 0), else 1.</summary>
    public static float Factor(double norm, double maxNorm) =>
        maxNorm > 0 && norm > maxNorm ? (float)(maxNorm / (norm + 1e-6)) : 1f;

    public static double L2Norm(ReadOnlySpan<float> values) => Math.Sqrt(FlatMath.SquaredNorm(values));
}
