using BatchCluster.Core.Numerics;

namespace BatchCluster.Core.Gradients;

/// <summary>
/// The mean gradient over a whole global batch from per-share gradient sums:
/// g = Σ_i grad_sum_i / Σ_i n_i, which equals the gradient of the mean loss over the batch
/// whatever the share and micro-batch sizes. Shares are summed in the order given (the plan's
/// order), never in arrival order, so the result is bitwise reproducible.
/// </summary>
public static class ExactAverage
{
    public static int Compute(IReadOnlyList<ShareGradient> sharesInPlanOrder, Span<float> mean)
    {
        if (sharesInPlanOrder.Count == 0) throw new ArgumentException("no shares to average", nameof(sharesInPlanOrder));
        int total = 0;
        for (int i = 0; i < sharesInPlanOrder.Count; i++)
        {
            var sum = sharesInPlanOrder[i].GradientSum;
            if (sum.Length != mean.Length)
                throw new ArgumentException($"share {i} has {sum.Length} gradient values, expected {mean.Length}");
            if (i == 0) sum.Span.CopyTo(mean);
            else FlatMath.AddInPlace(mean, sum.Span);
            total += sharesInPlanOrder[i].SampleCount;
        }
        if (total <= 0) throw new ArgumentException("shares hold no samples", nameof(sharesInPlanOrder));
        FlatMath.DivideInPlace(mean, total);
        return total;
    }
}
