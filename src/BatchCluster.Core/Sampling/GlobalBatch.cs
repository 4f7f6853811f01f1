namespace BatchCluster.Core.Sampling;

/// <summary>
/// The sample ids behind one optimizer step. <paramref name="Step"/> counts from 0 over the whole run; the ids are
/// positions [<paramref name="Offset"/>, Offset + Size) of epoch <paramref name="Epoch"/>'s visiting order.
/// </summary>
public sealed record GlobalBatch(long Step, int Epoch, int Offset, int[] SampleIds)
{
    public int Size => SampleIds.Length;
}
