namespace BatchCluster.Core.Sampling;

/// <summary>The sample ids behind one optimizer step. <paramref name="Step"/> counts from 0 over the whole run.</summary>
public sealed record GlobalBatch(long Step, int Epoch, int IndexInEpoch, int[] SampleIds)
{
    public int Size => SampleIds.Length;
}
