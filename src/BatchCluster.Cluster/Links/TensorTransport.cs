using Akka.Actor;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// The one seam through which tensors travel. Within a process a message goes as it is (no copy):
/// the receiver reads the sender's array, which is why the ownership rule of
/// <see cref="TrainingProtocol"/> exists. To another process the tensor is copied before
/// <see cref="Tell"/> returns (the sender's array is never read later by the transport): a small
/// tensor as one copied message, a larger one cut into chunks of at most <see cref="ChunkFloats"/>
/// values (256 KiB, far below Akka's frame size, so heartbeats never wait behind a huge frame): a
/// <see cref="TensorTransferStart"/> with the message minus its tensor, then the chunks in order
/// (Akka keeps per-pair order). The receiver's <see cref="TensorReassembly"/> rebuilds the message.
/// </summary>
public static class TensorTransport
{
    public const int ChunkFloats = 64 * 1024;

    private static long _nextTransferId;

    /// <summary>Whether <paramref name="target"/> would read the very arrays sent to it (it lives in this process).</summary>
    public static bool SharesMemoryWith(IActorRef target) => target.Path.Address.HasLocalScope;

    public static void Tell(IActorRef target, ITensorMessage message, IActorRef sender)
    {
        var tensor = message.Tensor;
        if (SharesMemoryWith(target))
        {
            target.Tell(message, sender);
            return;
        }
        if (tensor.Length <= ChunkFloats)
        {
            // Serialized later, on the transport's thread: it gets a copy, never the sender's array.
            target.Tell(message.WithTensor(tensor.ToArray()), sender);
            return;
        }
        long id = Interlocked.Increment(ref _nextTransferId);
        int chunks = (tensor.Length + ChunkFloats - 1) / ChunkFloats;
        target.Tell(new TensorTransferStart(id, message.WithTensor(ReadOnlyMemory<float>.Empty), tensor.Length, chunks), sender);
        for (int i = 0; i < chunks; i++)
        {
            int offset = i * ChunkFloats;
            // A copy: the chunk may be serialized after the sender's buffer has moved on.
            var values = tensor.Slice(offset, Math.Min(ChunkFloats, tensor.Length - offset)).ToArray();
            target.Tell(new TensorChunk(id, i, values), sender);
        }
    }
}

/// <summary>The header of a chunked transfer: the message without its tensor, and the tensor's size.</summary>
public sealed record TensorTransferStart(long TransferId, ITensorMessage Message, int TotalLength, int ChunkCount) : ITrainingMessage;

/// <summary>One piece of a chunked tensor, in order.</summary>
public sealed record TensorChunk(long TransferId, int Index, float[] Values) : ITrainingMessage;
