namespace BatchCluster.Core.Gradients;

/// <summary>
/// What a worker computed for one share: the SUM (not the mean) of per-sample gradients and losses,
/// so that shares of any size combine exactly. <see cref="GradientSum"/> is one flat buffer in the
/// documented parameter order. <see cref="Worker"/> names who computed it, for the log of a step
/// that cannot be applied.
/// </summary>
public sealed record ShareGradient(ReadOnlyMemory<float> GradientSum, int SampleCount, double LossSum, double GradientSumSquaredNorm,
    double ComputeMilliseconds, string Worker = "local")
{
    /// <summary>
    /// Under --bn-batch: per batch-norm layer, the sums over the share's ghost batches of each channel's mean and unbiased
    /// variance (<see cref="Models.RunningStatistics"/>'s layout), an array the result owns; null otherwise.
    /// </summary>
    public float[]? BatchNormSums { get; init; }

    /// <summary>
    /// Where the share was computed as two halves for the noise estimate (<see cref="ShareHalves"/>): each half's size and the
    /// squared norm of its gradient sum; null otherwise.
    /// </summary>
    public (int Size, double SumSquaredNorm)[]? Halves { get; init; }

    /// <summary>Whether the loss and every gradient value are finite (no NaN, no ±∞).</summary>
    public bool IsFinite => double.IsFinite(LossSum) && Numerics.FlatMath.AllFinite(GradientSum.Span);

    /// <summary>Everything but the values, with finiteness as the caller knows it (a finite sum of all shares proves each finite; else <see cref="IsFinite"/>).</summary>
    public ShareTally Tally(bool finite) => new(SampleCount, LossSum, GradientSumSquaredNorm, ComputeMilliseconds, Worker, finite, Halves);
}
