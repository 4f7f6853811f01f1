using System.Collections.Concurrent;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// An encoded frame (header + payload) waiting to be written to one or more connections. The
/// parameters of one version are encoded once and the same bytes go to every worker: each
/// connection holds a reference until its write finished, and the bytes go back to the pool when
/// the last reference is released. Nobody writes the bytes after <see cref="Encode"/>.
/// </summary>
public sealed class OutgoingFrame
{
    // Stacks under a lock (a ConcurrentStack allocates a node per push, here per frame sent).
    private static readonly ConcurrentDictionary<int, Stack<byte[]>> Pool = new();
    private const int MaxPooledPerLength = 64; // a ring sends a shard's chunks to a member at once

    private readonly byte[] _bytes;
    private int _references = 1;

    private OutgoingFrame(byte[] bytes) => _bytes = bytes;

    public ReadOnlyMemory<byte> Bytes => _bytes;

    public static OutgoingFrame Encode(FrameHeader header, ReadOnlySpan<float> values)
    {
        int payload = header.PayloadBytes;
        int length = FrameHeader.Size + payload;
        byte[]? bytes = null;
        if (Pool.TryGetValue(length, out var pool))
            lock (pool)
                pool.TryPop(out bytes);
        bytes ??= GC.AllocateUninitializedArray<byte>(length);
        FramePayload.Encode(values, header.Precision, bytes.AsSpan(FrameHeader.Size));
        var checksummed = header with { Checksum = FramePayload.Checksum(bytes.AsSpan(FrameHeader.Size, payload)) };
        checksummed.Write(bytes);
        return new OutgoingFrame(bytes);
    }

    /// <summary>A small control frame (no pooling): e.g. HelloAccepted.</summary>
    public static OutgoingFrame Raw(byte[] bytes) => new(bytes) { _pooled = false };

    private bool _pooled = true;

    /// <summary>One more holder (a connection that will write it).</summary>
    public OutgoingFrame Retain()
    {
        if (Interlocked.Increment(ref _references) <= 1) throw new InvalidOperationException("a released frame was retained again");
        return this;
    }

    public void Release()
    {
        int left = Interlocked.Decrement(ref _references);
        if (left < 0) throw new InvalidOperationException("a frame was released more often than retained");
        if (left > 0 || !_pooled) return;
        var pool = Pool.GetOrAdd(_bytes.Length, _ => new Stack<byte[]>(MaxPooledPerLength));
        lock (pool)
            if (pool.Count < MaxPooledPerLength) pool.Push(_bytes);
    }
}
