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

    /// <summary>What an optimizer's loop reads the gradient through (the constants as vectors, made once per update).</summary>
    internal Reader Read() => new(this);

    internal readonly struct Reader(GradientScale scale)
    {
        private readonly Vector<float> _divisor = new(scale.Divisor);
        private readonly Vector<float> _factor = new(scale.Factor);
        private readonly bool _divide = scale.Divisor != 1f;
        private readonly bool _multiply = scale.Factor != 1f;

        /// <summary>The scaled gradient vector at <paramref name="start"/> (FlatMath.Load: zero-padded past the end).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector<float> Load(ReadOnlySpan<float> gradient, int start)
        {
            var g = Numerics.FlatMath.Load(gradient, start);
            if (_divide) g /= _divisor;
            if (_multiply) g *= _factor;
            return g;
        }
    }
}
