using System.Numerics;
using System.Runtime.CompilerServices;

namespace BatchCluster.Core.Optimizers;

/// <summary>
/// How an optimizer reads the gradient it is given: g = (raw / <see cref="Divisor"/>) · <see cref="Factor"/>,
/// each operation rounded in float32 as a separate pass would round it. This lets the last steps of
/// a commit (a ring shard's division by the batch size, clipping's scale) ride in the optimizer's
/// own pass over memory instead of a pass each; dividing or multiplying by 1 is skipped, which is
/// exact anyway.
/// </summary>
public readonly record struct GradientScale(float Divisor, float Factor)
{
    /// <summary>The gradient as given.</summary>
    public static GradientScale None => new(1f, 1f);

    /// <summary>Only clipping's factor (1: no clipping).</summary>
    public static GradientScale Clipped(float factor) => new(1f, factor);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector<float> Apply(Vector<float> raw, Vector<float> divisor, Vector<float> factor, bool divide, bool scale)
    {
        if (divide) raw /= divisor;
        if (scale) raw *= factor;
        return raw;
    }

    internal bool Divides => Divisor != 1f;
    internal bool Scales => Factor != 1f;
}
