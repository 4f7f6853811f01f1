using BatchCluster.Core.Data;

namespace BatchCluster.Cluster.Protocol;

/// <summary>
/// The messages of one step (DESIGN "One step") and of evaluation. Every request carries the run id
/// and the parameter version it must be computed at; every reply echoes them, so the coordinator
/// can drop stale or foreign work.
///
/// Parameters travel with the work as a read-only view of the coordinator's buffer. In one
/// process that view is the live buffer: this is safe because the coordinator only mutates its
/// parameters when no share or evaluation is outstanding (every worker has already copied them
/// into its replica before replying). Across processes the serializer copies them.
/// </summary>
public static class TrainingProtocol
{
    public sealed record ParameterSnapshot(long Version, ReadOnlyMemory<float> Values);

    /// <summary>Compute the gradient sum of <paramref name="SampleIds"/> at parameters version <c>Parameters.Version</c>.</summary>
    public sealed record ComputeShare(string RunId, long Step, int ShareIndex, int[] SampleIds, int MicroBatch, ParameterSnapshot Parameters) : ITrainingMessage;

    /// <summary>The gradient SUM and loss SUM over a share (see Core's ShareGradient).</summary>
    public sealed record ShareComputed(
        string RunId, long Step, long ParameterVersion, int ShareIndex, int SampleCount, double LossSum,
        float[] GradientSum, double GradientSumSquaredNorm, double ComputeMilliseconds) : ITrainingMessage;

    /// <summary>Evaluate samples [Start, Start + Count) of a split in eval mode.</summary>
    public sealed record Evaluate(string RunId, int RequestId, DataSplit Split, int Start, int Count, ParameterSnapshot Parameters) : ITrainingMessage;

    public sealed record EvaluationDone(string RunId, int RequestId, long ParameterVersion, double LossSum, long Correct, long Count) : ITrainingMessage;
}
