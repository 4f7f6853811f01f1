namespace BatchCluster.Core.Gradients;

/// <summary>
/// The noise estimate of a step that has one share (one worker, or the plain loop): the share is computed as two halves, each
/// with the squared norm of its gradient sum, and the sum of the halves is the share's gradient exactly as shares add up
/// (docs/adaptive-batch.md, "Where there is one share"). The cut is the same everywhere, so a one-worker cluster and the plain
/// loop compute the same halves in the same order.
/// </summary>
public static class ShareHalves
{
    /// <summary>Samples in the first half of a share of <paramref name="count"/>: half of its whole granules (ghost batches), rounded down; 0 when it cannot be cut.</summary>
    public static int FirstHalf(int count, int granule) => count / granule / 2 * granule;

    /// <summary>The two halves as the noise estimate takes shares: (size, squared norm of the gradient sum).</summary>
    public static (int Size, double SumSquaredNorm)[] AsShares(int count, int firstHalf, double firstSquaredNorm, double secondSquaredNorm) =>
        [(firstHalf, firstSquaredNorm), (count - firstHalf, secondSquaredNorm)];

    /// <summary>
    /// Whether two halves' squared norms a and b can belong to a sum whose squared norm is <paramref name="total"/>: the norms of
    /// the halves and of their sum satisfy the triangle inequality, (√a − √b)² ≤ total ≤ (√a + √b)². A relative slack of 1e-4
    /// covers the float32 rounding of the sum (each squared norm is summed in double from float values). Reported by a worker in
    /// another process, the halves are checked against this before they steer the noise estimate; NaN anywhere fails.
    /// </summary>
    public static bool Consistent(double first, double second, double total)
    {
        if (!(first >= 0 && second >= 0 && total >= 0) || !double.IsFinite(first + second + total)) return false;
        double low = Math.Sqrt(first) - Math.Sqrt(second), high = Math.Sqrt(first) + Math.Sqrt(second);
        const double slack = 1e-4;
        return total >= low * low * (1 - slack) && total <= high * high * (1 + slack);
    }
}
