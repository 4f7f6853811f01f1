using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// Gradient-sized float buffers recycled within one process, so that a fresh buffer per share
/// (the ownership rule in <see cref="Protocol.TrainingProtocol"/>) does not cost a large-object
/// allocation per share. A buffer is rented by whoever fills it (a worker, the chunk
/// reassembly), travels in a message to its new owner, and is returned by that owner when it
/// no longer reads it (the coordinator, after the step commits). A rented buffer holds stale
/// values: the renter overwrites all of it.
/// </summary>
public static class TensorBuffers
{
    /// <summary>Enough for a step of many workers; more returned buffers are left to the GC.</summary>
    private const int MaxPooledPerLength = 64;

    // A stack under a lock, not a ConcurrentStack: that allocates a node per push, per buffer returned, every step.
    private static readonly ConcurrentDictionary<int, Stack<float[]>> Pools = new();

    public static float[] Rent(int length)
    {
        if (length == 0) return [];
        if (Pools.TryGetValue(length, out var pool))
            lock (pool)
                if (pool.TryPop(out var buffer)) return buffer;
        return GC.AllocateUninitializedArray<float>(length);
    }

    /// <summary>Gives a buffer back; only a whole array is pooled (a slice of a bigger one is left alone).</summary>
    public static void Return(ReadOnlyMemory<float> tensor)
    {
        if (!MemoryMarshal.TryGetArray(tensor, out var segment) || segment.Array is not { Length: > 0 } array
            || segment.Offset != 0 || segment.Count != array.Length)
            return;
        var pool = Pools.GetOrAdd(array.Length, _ => new Stack<float[]>(MaxPooledPerLength));
        lock (pool)
            if (pool.Count < MaxPooledPerLength) pool.Push(array);
    }
}
