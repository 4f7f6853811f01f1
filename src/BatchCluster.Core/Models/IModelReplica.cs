using BatchCluster.Core.Data;
using BatchCluster.Core.Gradients;

namespace BatchCluster.Core.Models;

/// <summary>
/// A worker's copy of the model on some compute backend: TorchSharp on the CPU (<see cref="ModelReplica"/>)
/// or ILGPU kernels (BatchCluster.Gpu). The contract, the same for every backend:
/// <list type="bullet">
/// <item>parameters are one flat float32 vector in TorchSharp's <c>parameters()</c> order (for the MLP:
/// each layer's weight [out × in] row-major, then its bias), loaded whole;</item>
/// <item>inputs are pixels scaled to [0, 1] (x / 255), nothing else;</item>
/// <item>the loss is the SUM of cross-entropy over the samples, and the gradient returned is the sum of
/// the per-sample gradients over the share, however it is cut into micro-batches, so that
/// Σ grad_sum / Σ n over the shares is the global batch's mean gradient (the exactness promise);</item>
/// <item>evaluation returns the loss sum and the number of correct top-1 predictions, so any split of
/// the rows adds up exactly.</item>
/// </list>
/// A replica belongs to one thread (the worker's).
/// </summary>
public interface IModelReplica : IDisposable
{
    ModelSpec Spec { get; }

    int ParameterCount { get; }

    /// <summary>What it computes on, as a worker registers it (e.g. "cpu", "ilgpu-cpu", "cuda:0 NVIDIA H200").</summary>
    string Device { get; }

    void LoadParameters(ReadOnlySpan<float> flat);

    /// <summary>
    /// Σ over the share's samples of ∇ loss(sample), written into <paramref name="gradientSum"/>,
    /// processing at most <paramref name="microBatch"/> samples per forward/backward pass.
    /// </summary>
    ShareGradient ComputeGradientSum(ImageDataSet data, ReadOnlySpan<int> sampleIds, int microBatch, float[] gradientSum);

    /// <summary>
    /// From now on, batch norm in training normalises over ghost batches of <paramref name="size"/> samples, and each share's
    /// result carries the sums of their statistics (<see cref="ShareGradient.BatchNormSums"/>); shares and micro-batches must be
    /// made of whole ghost batches.
    /// </summary>
    void UseGhostBatches(int size) => throw new NotSupportedException($"the {Device} backend has no batch norm");

    /// <summary>The running statistics evaluation uses (the coordinator's, under --bn-batch).</summary>
    void LoadRunningStatistics(ReadOnlySpan<float> values)
    {
        if (values.Length != 0) throw new NotSupportedException($"the {Device} backend has no batch norm");
    }

    /// <summary>Loss sum and correct count over the given rows in eval mode.</summary>
    EvaluationResult Evaluate(ImageDataSet data, ReadOnlySpan<int> rows, int batchSize = 256);
}

public static class ModelReplicaExtensions
{
    /// <summary>Loss sum and correct count over samples [start, start + count) in eval mode, on any backend.</summary>
    public static EvaluationResult Evaluate(this IModelReplica replica, ImageDataSet data, int start, int count, int batchSize = 256) =>
        replica.Evaluate(data, Enumerable.Range(start, count).ToArray(), batchSize);
}
