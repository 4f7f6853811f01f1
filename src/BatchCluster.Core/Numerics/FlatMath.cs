using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BatchCluster.Core.Numerics;

/// <summary>
/// The few element-wise operations the coordinator's hot path needs on flat float32 buffers,
/// written as explicit Vector&lt;float&gt; loops. Measured on our 2-core machine, these run ~5× faster
/// than the equivalent System.Numerics.Tensors.TensorPrimitives calls (0.04 vs 0.20 ms for a
/// multiply-add over 203,530 floats; see docs/performance.md), and one fused pass beats several.
/// Every operation rounds exactly like its scalar form (no fused multiply-add), so results do not
/// depend on the vector width.
/// </summary>
public static class FlatMath
{
    /// <summary>y ← y + x</summary>
    public static void AddInPlace(Span<float> y, ReadOnlySpan<float> x)
    {
        CheckLengths(y.Length, x.Length);
        for (int i = 0; i < y.Length; i += Width)
            Store(Load(y, i) + Load(x, i), y, i);
    }

    /// <summary>z ← x + y</summary>
    public static void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z)
    {
        CheckLengths(x.Length, y.Length);
        CheckLengths(z.Length, x.Length);
        for (int i = 0; i < z.Length; i += Width)
            Store(Load(x, i) + Load(y, i), z, i);
    }

    /// <summary>z ← x / d</summary>
    public static void Divide(ReadOnlySpan<float> x, float d, Span<float> z)
    {
        CheckLengths(z.Length, x.Length);
        var vd = new Vector<float>(d);
        for (int i = 0; i < z.Length; i += Width)
            Store(Load(x, i) / vd, z, i);
    }

    /// <summary>y ← y / d (division, not multiplication by 1/d, so a mean is correctly rounded)</summary>
    public static void DivideInPlace(Span<float> y, float d)
    {
        var vd = new Vector<float>(d);
        for (int i = 0; i < y.Length; i += Width)
            Store(Load(y, i) / vd, y, i);
    }

    /// <summary>y ← y · s</summary>
    public static void ScaleInPlace(Span<float> y, float s)
    {
        var vs = new Vector<float>(s);
        for (int i = 0; i < y.Length; i += Width)
            Store(Load(y, i) * vs, y, i);
    }

    /// <summary>y ← y + x · s (a multiply, then an add: no fused multiply-add)</summary>
    public static void MultiplyAddInPlace(Span<float> y, ReadOnlySpan<float> x, float s)
    {
        CheckLengths(y.Length, x.Length);
        var vs = new Vector<float>(s);
        for (int i = 0; i < y.Length; i += Width)
            Store(Load(y, i) + Load(x, i) * vs, y, i);
    }

    /// <summary>
    /// y ← y + x, returning Σ y² of the result — the same bits as <see cref="SquaredNorm"/> after the add — taken block by block
    /// while each block is still in the cache: one pass over memory where the add and the norm apart would take two.
    /// </summary>
    public static double AddInPlaceAndSquaredNorm(Span<float> y, ReadOnlySpan<float> x)
    {
        const int block = CacheBlockFloats;
        CheckLengths(y.Length, x.Length);
        var norm = new SquaredNormSum();
        int whole = y.Length - y.Length % Width;
        for (int start = 0; start < y.Length; start += block)
        {
            var piece = y.Slice(start, Math.Min(block, y.Length - start));
            AddInPlace(piece, x.Slice(start, piece.Length));
            norm.AddWholeVectors(piece.Slice(0, Math.Max(0, Math.Min(piece.Length, whole - start))));
        }
        return norm.Total(y.Slice(whole));
    }

    /// <summary>
    /// Values per block of the passes that do two things to a vector while each block is still in the cache (8 KiB: well inside L1/L2).
    /// A multiple of every vector width, so that each block but the last holds whole vectors.
    /// </summary>
    public const int CacheBlockFloats = 2048;

    /// <summary>Elements per vector.</summary>
    public static int Width => Vector<float>.Count;

    /// <summary>The vector starting at <paramref name="start"/>; past the end, zero-padded (the last, partial vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Load(ReadOnlySpan<float> x, int start) =>
        start + Width <= x.Length ? new Vector<float>(x.Slice(start)) : LoadTail(x, start);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Load(Span<float> x, int start) => Load((ReadOnlySpan<float>)x, start);

    /// <summary>Writes <paramref name="v"/> at <paramref name="start"/>, only the elements that exist.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector<float> v, Span<float> x, int start)
    {
        if (start + Width <= x.Length) v.CopyTo(x.Slice(start));
        else StoreTail(v, x, start);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector<float> LoadTail(ReadOnlySpan<float> x, int start)
    {
        Span<float> padded = stackalloc float[Width];
        padded.Clear();
        x.Slice(start).CopyTo(padded);
        return new Vector<float>(padded);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StoreTail(Vector<float> v, Span<float> x, int start)
    {
        Span<float> padded = stackalloc float[Width];
        v.CopyTo(padded);
        padded.Slice(0, x.Length - start).CopyTo(x.Slice(start));
    }

    /// <summary>
    /// Σ x², every square and sum in double: a float32 vector whose values are all finite always has
    /// a finite squared norm (the largest float squared is 1.2e77), so a non-finite result means a
    /// NaN or an infinity in <paramref name="x"/>, never an overflow of the sum (at lr 1e9 a
    /// float accumulator read Infinity while every parameter was finite).
    /// </summary>
    public static double SquaredNorm(ReadOnlySpan<float> x)
    {
        var sum = new SquaredNormSum();
        int whole = x.Length - x.Length % Width;
        sum.AddWholeVectors(x.Slice(0, whole));
        return sum.Total(x.Slice(whole));
    }

    /// <summary>
    /// <see cref="SquaredNorm"/> of one buffer taken piece by piece, front to back (a fused pass
    /// that produces the buffer block by block): the same accumulators in the same order, so the
    /// same bits as one call over the whole buffer.
    /// </summary>
    public struct SquaredNormSum
    {
        private Vector<double> _low;
        private Vector<double> _high;

        /// <summary>The next piece; its length a multiple of <see cref="Width"/>.</summary>
        public void AddWholeVectors(ReadOnlySpan<float> piece)
        {
            var v = MemoryMarshal.Cast<float, Vector<float>>(piece);
            var low = _low;
            var high = _high;
            for (int i = 0; i < v.Length; i++)
            {
                Vector.Widen(v[i], out Vector<double> a, out Vector<double> b);
                low += a * a;
                high += b * b;
            }
            _low = low;
            _high = high;
        }

        /// <summary>The sum, with the buffer's last elements that do not fill a vector (fewer than <see cref="Width"/>).</summary>
        public readonly double Total(ReadOnlySpan<float> tail)
        {
            double total = Vector.Sum(_low) + Vector.Sum(_high);
            foreach (float x in tail) total += (double)x * x;
            return total;
        }
    }

    /// <summary>
    /// Whether every value a fused loop wrote is finite, gathered as it writes: whole vectors by
    /// <see cref="Add"/> (x − x is 0 exactly for finite x, NaN otherwise), the partial last vector
    /// read back by <see cref="AllFinite(ReadOnlySpan{float})"/> (its padding lanes hold no value
    /// and must not count).
    /// </summary>
    public struct FiniteCheck
    {
        private Vector<float> _bad;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(Vector<float> written) => _bad += written - written;

        /// <param name="written">The whole range written; only its partial last vector is read.</param>
        public readonly bool AllFinite(ReadOnlySpan<float> written)
        {
            if (!Vector.EqualsAll(_bad, Vector<float>.Zero)) return false;
            foreach (float x in written.Slice(written.Length - written.Length % Width))
                if (!float.IsFinite(x)) return false;
            return true;
        }
    }

    /// <summary>Whether every value is finite (no NaN, no ±∞): x − x is 0 exactly for finite x and NaN otherwise.</summary>
    public static bool AllFinite(ReadOnlySpan<float> x)
    {
        var v = MemoryMarshal.Cast<float, Vector<float>>(x);
        var bad = Vector<float>.Zero;
        for (int i = 0; i < v.Length; i++) bad += v[i] - v[i];
        if (!Vector.EqualsAll(bad, Vector<float>.Zero)) return false;
        for (int i = v.Length * Vector<float>.Count; i < x.Length; i++)
            if (!float.IsFinite(x[i])) return false;
        return true;
    }

    /// <summary>pixels / 255 as float32: the models' only input transform.</summary>
    public static void BytesToUnitFloats(ReadOnlySpan<byte> pixels, Span<float> output)
    {
        CheckLengths(output.Length, pixels.Length);
        var scale = new Vector<float>(255f);
        int i = 0;
        var bytes = MemoryMarshal.Cast<byte, Vector<byte>>(pixels);
        var floats = MemoryMarshal.Cast<float, Vector<float>>(output);
        for (int b = 0; b < bytes.Length; b++, i += Vector<byte>.Count)
        {
            Vector.Widen(bytes[b], out Vector<ushort> low, out Vector<ushort> high);
            Vector.Widen(low, out Vector<uint> q0, out Vector<uint> q1);
            Vector.Widen(high, out Vector<uint> q2, out Vector<uint> q3);
            int f = b * 4;
            floats[f] = Vector.ConvertToSingle(q0) / scale;
            floats[f + 1] = Vector.ConvertToSingle(q1) / scale;
            floats[f + 2] = Vector.ConvertToSingle(q2) / scale;
            floats[f + 3] = Vector.ConvertToSingle(q3) / scale;
        }
        for (; i < pixels.Length; i++) output[i] = pixels[i] / 255f;
    }

    internal static void CheckLengths(int a, int b)
    {
        if (a != b) throw new ArgumentException($"buffer lengths differ: {a} vs {b}");
    }
}
