namespace BatchCluster.Core.Planning;

/// <summary>The part of a step's global batch given to one worker (identified by its index in the plan's worker list).</summary>
public sealed record WorkShare(int WorkerIndex, int[] SampleIds)
{
    public int Size => SampleIds.Length;
}
