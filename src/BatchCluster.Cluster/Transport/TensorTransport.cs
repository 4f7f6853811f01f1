using Akka.Actor;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Transport;

/// <summary>
/// The one seam through which tensors travel. Within a process a message goes as it is (no copy).
/// To another process its tensor is cut into chunks of at most <see cref="ChunkFloats"/> values
/// (256 KiB, far below Akka's frame size, so heartbeats never wait behind a huge frame): a
/// <see cref="TensorTransferStart"/> with the message minus its tensor, then the chunks in order
/// (Akka keeps per-pair order). The receiver's <see cref="TensorReassembly"/> rebuilds the message.
/// </summary>
public static class TensorTransport
{
    public const int ChunkFloats = 64 * 1024;

    private static long _nextTransferId;

    public static void Tell(IActorRef target, ITensorMessage message, IActorRef sender)
    {
        var tensor = message.Tensor;
        if (target.Path.Address.HasLocalScope || tensor.Length <= ChunkFloats)
        {
            target.Tell(message, sender);
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
