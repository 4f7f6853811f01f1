using BatchCluster.Core.Numerics;

namespace BatchCluster.Core.Gradients;

/// <summary>
/// The mean gradient over a whole global batch from per-share gradient sums:
/// g = Σ_i grad_sum_i / Σ_i n_i, which equals the gradient of the mean loss over the batch
/// whatever the share and micro-batch sizes. Shares are summed in the order given (the plan's
/// order), never in arrival order, so the result is bitwise reproducible.
/// <para>One pass over memory: the model is taken in blocks small enough to stay in the L1 cache
/// (<see cref="BlockFloats"/>); each block of the mean is the first share's block plus the next
/// share's, …, divided by the sample count, and its squared norm is gathered while it is there.
/// Per element that is exactly the whole-buffer order (((s₀ + s₁) + s₂) + …) / n, and the norm
/// accumulates in the same order as <see cref="FlatMath.SquaredNorm"/>, so the bits are those of
/// add, …, divide and norm done as separate passes (tested against that and a scalar oracle).
/// Split over two threads it took half the time alone, but no less inside a run, where the other
/// core is not idle (docs/performance.md).</para>
/// </summary>
public static class ExactAverage
{
    /// <summary>Floats per block: the cache-sized block of FlatMath's fused passes (8 KiB; blocks hold whole vectors but the last).</summary>
    public const int BlockFloats = FlatMath.CacheBlockFloats;

    public static int Compute(IReadOnlyList<ShareGradient> sharesInPlanOrder, Span<float> mean) =>
        Compute(sharesInPlanOrder, mean, out _);

    /// <param name="meanSquaredNorm">Σ mean², in double (<see cref="FlatMath.SquaredNorm"/>): finite exactly when every value of the mean is.</param>
    /// <param name="alreadySummed">How many leading shares <paramref name="mean"/> already holds the sum of (<see cref="SumInto"/>, as they
    /// arrived); the rest are added in the same order, so the bits are those of one pass over all of them.</param>
    /// <param name="alsoAddMeanTo">A noise window the mean is also added to, block by block while it is in the cache (where the
    /// window reads: <see cref="PersistentGradient.Add"/>); null: none.</param>
    /// <returns>The samples the shares hold.</returns>
    public static int Compute(IReadOnlyList<ShareGradient> sharesInPlanOrder, Span<float> mean, out double meanSquaredNorm, int alreadySummed = 0,
        PersistentGradient? alsoAddMeanTo = null)
    {
        if (sharesInPlanOrder.Count == 0) throw new ArgumentException("no shares to average", nameof(sharesInPlanOrder));
        int total = 0;
        for (int i = 0; i < sharesInPlanOrder.Count; i++)
        {
            int length = sharesInPlanOrder[i].GradientSum.Length;
            if (length != mean.Length)
                throw new ArgumentException($"share {i} has {length} gradient values, expected {mean.Length}");
            total += sharesInPlanOrder[i].SampleCount;
        }
        if (total <= 0) throw new ArgumentException("shares hold no samples", nameof(sharesInPlanOrder));
        if (alreadySummed < 0 || alreadySummed > sharesInPlanOrder.Count) throw new ArgumentOutOfRangeException(nameof(alreadySummed));

        var norm = new FlatMath.SquaredNormSum();
        int whole = mean.Length - mean.Length % FlatMath.Width;
        for (int start = 0; start < mean.Length; start += BlockFloats)
        {
            int length = Math.Min(BlockFloats, mean.Length - start);
            var block = mean.Slice(start, length);
            var first = sharesInPlanOrder[0].GradientSum.Span.Slice(start, length);
            if (alreadySummed == 0 && sharesInPlanOrder.Count == 1) FlatMath.Divide(first, total, block);
            else
            {
                int next = alreadySummed;
                if (next == 0)
                {
                    // s₀ + s₁ straight into the block: no copy pass first
                    FlatMath.Add(first, sharesInPlanOrder[1].GradientSum.Span.Slice(start, length), block);
                    next = 2;
                }
                for (int i = next; i < sharesInPlanOrder.Count; i++)
                    FlatMath.AddInPlace(block, sharesInPlanOrder[i].GradientSum.Span.Slice(start, length));
                FlatMath.DivideInPlace(block, total);
            }
            norm.AddWholeVectors(block.Slice(0, Math.Min(length, whole - start)));
            alsoAddMeanTo?.Add(start, block, 1f);
        }
        meanSquaredNorm = norm.Total(mean.Slice(whole));
        return total;
    }

    /// <summary>
    /// Adds one share's gradient sum to a running sum, ahead of <see cref="Compute"/>: the first
    /// share is copied in, each next one added, in plan order (the per-element order of one pass).
    /// </summary>
    /// <param name="index">The share's place in plan order: 0 starts the sum.</param>
    public static void SumInto(Span<float> sum, ReadOnlySpan<float> gradientSum, int index)
    {
        FlatMath.CheckLengths(sum.Length, gradientSum.Length);
        if (index == 0) gradientSum.CopyTo(sum);
        else FlatMath.AddInPlace(sum, gradientSum);
    }
}
