namespace BatchCluster.Core.Gradients;

/// <summary>
/// What a worker computed for one share: the SUM (not the mean) of per-sample gradients and losses,
/// so that shares of any size combine exactly. <see cref="GradientSum"/> is one flat buffer in the
/// documented parameter order.
/// </summary>
public sealed record ShareGradient(ReadOnlyMemory<float> GradientSum, int SampleCount, double LossSum, double GradientSumSquaredNorm, double ComputeMilliseconds);
