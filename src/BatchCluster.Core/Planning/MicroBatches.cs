namespace BatchCluster.Core.Planning;

/// <summary>How a worker walks its share: consecutive slices of at most <c>microBatch</c> samples.</summary>
public static class MicroBatches
{
    public static IEnumerable<Range> Of(int shareSize, int microBatch)
    {
        if (microBatch <= 0) throw new ArgumentOutOfRangeException(nameof(microBatch), $"micro-batch {microBatch} must be positive");
        for (int start = 0; start < shareSize; start += microBatch)
            yield return new Range(start, Math.Min(start + microBatch, shareSize));
    }
}
