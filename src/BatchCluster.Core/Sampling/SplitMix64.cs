namespace BatchCluster.Core.Sampling;

/// <summary>
/// SplitMix64: a tiny, fully specified random generator. We use it instead of System.Random so that
/// permutations and synthetic data are identical on every .NET version and platform, forever.
/// </summary>
public struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, bound) without modulo bias (Lemire's method with rejection).</summary>
    public int NextInt(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound));
        ulong threshold = (ulong)(-(long)bound) % (ulong)bound;
        while (true)
        {
            ulong r = NextUInt64();
            UInt128 product = (UInt128)r * (ulong)bound;
            if ((ulong)product >= threshold) return (int)(product >> 64);
        }
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A generator for a sub-stream, e.g. (seed, epoch): mixing keeps nearby keys unrelated.</summary>
    public static SplitMix64 For(long seed, long stream)
    {
        var mixer = new SplitMix64((ulong)seed);
        ulong a = mixer.NextUInt64();
        var second = new SplitMix64(a ^ ((ulong)stream * 0xD1B54A32D192ED03UL));
        return new SplitMix64(second.NextUInt64());
    }
}
