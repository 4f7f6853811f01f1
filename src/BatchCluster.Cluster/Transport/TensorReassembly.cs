using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Transport;

/// <summary>
/// Rebuilds messages sent in chunks by <see cref="TensorTransport"/>. One per receiving actor (not
/// thread-safe); transfers are keyed by (sender, transfer id). A transfer whose chunks arrive out of
/// order or overflow is a protocol error: <see cref="Begin"/> and <see cref="Add"/> throw, and
/// <see cref="Deliver"/>, which actors use, drops it with a warning (it is the sender's fault, never
/// a reason to fail the receiver).
/// </summary>
public sealed class TensorReassembly
{
    private sealed class Transfer(TensorTransferStart start)
    {
        public TensorTransferStart Start { get; } = start;
        public float[] Values { get; } = TensorBuffers.Rent(start.TotalLength);
        public int NextIndex { get; set; }
        public int Filled { get; set; }
    }

    private readonly Dictionary<(string Sender, long Id), Transfer> _transfers = new();

    public void Begin(string sender, TensorTransferStart start)
    {
        if (start.TotalLength < 0 || start.ChunkCount <= 0)
            throw new InvalidOperationException($"transfer {start.TransferId} from {sender}: bad size {start.TotalLength} in {start.ChunkCount} chunks");
        _transfers[(sender, start.TransferId)] = new Transfer(start);
    }

    /// <returns>The complete message once its last chunk has arrived, otherwise null.</returns>
    public ITensorMessage? Add(string sender, TensorChunk chunk)
    {
        if (!_transfers.TryGetValue((sender, chunk.TransferId), out var transfer))
            throw new InvalidOperationException($"chunk {chunk.Index} of unknown transfer {chunk.TransferId} from {sender}");
        if (chunk.Index != transfer.NextIndex || transfer.Filled + chunk.Values.Length > transfer.Values.Length)
            throw new InvalidOperationException($"transfer {chunk.TransferId} from {sender}: chunk {chunk.Index} out of order or too long");
        chunk.Values.CopyTo(transfer.Values, transfer.Filled);
        transfer.Filled += chunk.Values.Length;
        transfer.NextIndex++;
        if (transfer.NextIndex < transfer.Start.ChunkCount) return null;
        _transfers.Remove((sender, chunk.TransferId));
        if (transfer.Filled != transfer.Values.Length)
            throw new InvalidOperationException($"transfer {chunk.TransferId} from {sender}: {transfer.Filled} of {transfer.Values.Length} values arrived");
        return transfer.Start.Message.WithTensor(transfer.Values);
    }

    /// <summary>
    /// Takes one part of a chunked transfer (its start or a chunk) that <paramref name="sender"/> sent
    /// to <paramref name="receiver"/>; once the message is whole it goes to the receiver as if from
    /// the sender. A malformed transfer is dropped and logged.
    /// </summary>
    public void Deliver(ITrainingMessage part, IActorRef receiver, IActorRef sender, ILoggingAdapter log)
    {
        try
        {
            ITensorMessage? complete = null;
            if (part is TensorTransferStart start) Begin(sender.Path.ToString(), start);
            else if (part is TensorChunk chunk) complete = Add(sender.Path.ToString(), chunk);
            if (complete is not null) receiver.Tell(complete, sender);
        }
        catch (InvalidOperationException e)
        {
            log.Warning("Dropped a tensor transfer from {0}: {1}", sender, e.Message);
        }
    }

    /// <summary>Drops unfinished transfers from a sender that is gone.</summary>
    public void Forget(string sender)
    {
        foreach (var key in _transfers.Keys.Where(k => k.Sender == sender).ToList()) _transfers.Remove(key);
    }
}
