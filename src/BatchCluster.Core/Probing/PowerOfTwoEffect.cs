namespace BatchCluster.Core.Probing;

/// <summary>
/// How a power of two's step time compares with its two neighbours': median(2^k) divided by the
/// mean of median(2^k − 1) and median(2^k + 1), minus 1. Negative means the power of two is faster
/// than the sizes around it; −0.05 is 5% faster. (The neighbours straddle it, so the extra or
/// missing sample cancels to first order.)
/// </summary>
public sealed record PowerOfTwoEffect(int BatchSize, double RelativeStepTime)
{
    /// <summary>One effect per measured power of two whose two neighbours were measured too.</summary>
    public static IReadOnlyList<PowerOfTwoEffect> From(IReadOnlyList<ProbeResult> results)
    {
        var byBatch = results.ToDictionary(r => r.BatchSize);
        var effects = new List<PowerOfTwoEffect>();
        foreach (var r in results.OrderBy(r => r.BatchSize))
        {
            if (r.BatchSize < 2 || (r.BatchSize & (r.BatchSize - 1)) != 0) continue;
            if (!byBatch.TryGetValue(r.BatchSize - 1, out var below) || !byBatch.TryGetValue(r.BatchSize + 1, out var above)) continue;
            effects.Add(new PowerOfTwoEffect(r.BatchSize, r.MedianMs / ((below.MedianMs + above.MedianMs) / 2) - 1));
        }
        return effects;
    }
}
