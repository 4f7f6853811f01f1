namespace BatchCluster.Core.Numerics;

/// <summary>Order statistics shared by the coordinator's checks and the analysis.</summary>
public static class Statistics
{
    /// <summary>The median of the finite values (the mean of the middle two for an even count); NaN when there are none.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : MedianOfSorted(sorted);
    }

    /// <summary>Sorts <paramref name="values"/> in place and returns their median: nothing allocated (for the per-step checks).</summary>
    public static double MedianInPlace(Span<double> values)
    {
        values.Sort();
        return MedianOfSorted(values);
    }

    private static double MedianOfSorted(ReadOnlySpan<double> sorted)
    {
        int half = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
    }
}
