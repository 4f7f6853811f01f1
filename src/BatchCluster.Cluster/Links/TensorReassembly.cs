using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// Rebuilds messages sent in chunks by <see cref="TensorTransport"/>. One per receiving actor (not
/// thread-safe); transfers are keyed by sender. What a peer declares is checked before anything is
/// allocated for it, because the declaration comes from the network:
/// <list type="bullet">
/// <item>the tensor's length must be exactly <see cref="ExpectedLength"/> (the run's parameter count;
/// 0 until the receiver knows it, which refuses every transfer), and its chunk count must be the one
/// <see cref="TensorTransport"/> uses for that length;</item>
/// <item>a sender has at most one transfer in flight: a new start replaces its unfinished one;</item>
/// <item>an unfinished transfer older than <see cref="Timeout"/> is dropped (checked on every start).</item>
/// </list>
/// So the memory held for peers is at most one tensor of the run's size per sender the receiver
/// accepts messages from. A transfer whose chunks arrive out of order or overflow is a protocol
/// error: <see cref="Begin"/> and <see cref="Add"/> throw, and <see cref="Deliver"/>, which actors
/// use, drops it with a warning (it is the sender's fault, never a reason to fail the receiver).
/// </summary>
public sealed class TensorReassembly(Func<TimeSpan>? clock = null)
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private sealed class Transfer(TensorTransferStart start, TimeSpan startedAt)
    {
        public TensorTransferStart Start { get; } = start;
        public TimeSpan StartedAt { get; } = startedAt;
        public float[] Values { get; } = TensorBuffers.Rent(start.TotalLength);
        public int NextIndex { get; set; }
        public int Filled { get; set; }
    }

    private static readonly Stopwatch Uptime = Stopwatch.StartNew();
    private readonly Func<TimeSpan> _clock = clock ?? (() => Uptime.Elapsed);
    private readonly Dictionary<string, Transfer> _transfers = new();

    /// <summary>The only tensor length accepted (the run's parameter count); 0 refuses every transfer.</summary>
    public int ExpectedLength { get; set; }

    /// <summary>Transfers begun and not yet complete (for tests: the memory held for peers).</summary>
    public int InFlight => _transfers.Count;

    public void Begin(string sender, TensorTransferStart start)
    {
        DropExpired();
        if (start.TotalLength != ExpectedLength || ExpectedLength == 0)
            throw new InvalidOperationException(ExpectedLength == 0
                ? $"transfer {start.TransferId} from {sender} arrived before this actor knows the run's tensor size"
                : $"transfer {start.TransferId} from {sender} declares {start.TotalLength} values; a tensor of this run has {ExpectedLength}");
        int chunks = (start.TotalLength + TensorTransport.ChunkFloats - 1) / TensorTransport.ChunkFloats;
        if (start.ChunkCount != chunks)
            throw new InvalidOperationException($"transfer {start.TransferId} from {sender} declares {start.ChunkCount} chunks for {start.TotalLength} values (expected {chunks})");
        if (_transfers.Remove(sender, out var unfinished)) TensorBuffers.Return(unfinished.Values); // one in flight per sender
        _transfers[sender] = new Transfer(start, _clock());
    }

    /// <returns>The complete message once its last chunk has arrived, otherwise null.</returns>
    public ITensorMessage? Add(string sender, TensorChunk chunk)
    {
        if (!_transfers.TryGetValue(sender, out var transfer) || transfer.Start.TransferId != chunk.TransferId)
            throw new InvalidOperationException($"chunk {chunk.Index} of unknown transfer {chunk.TransferId} from {sender}");
        if (chunk.Index != transfer.NextIndex || transfer.Filled + chunk.Values.Length > transfer.Values.Length)
        {
            Drop(sender, transfer);
            throw new InvalidOperationException($"transfer {chunk.TransferId} from {sender}: chunk {chunk.Index} out of order or too long");
        }
        chunk.Values.CopyTo(transfer.Values, transfer.Filled);
        transfer.Filled += chunk.Values.Length;
        transfer.NextIndex++;
        if (transfer.NextIndex < transfer.Start.ChunkCount) return null;
        _transfers.Remove(sender);
        if (transfer.Filled != transfer.Values.Length)
        {
            TensorBuffers.Return(transfer.Values);
            throw new InvalidOperationException($"transfer {chunk.TransferId} from {sender}: {transfer.Filled} of {transfer.Values.Length} values arrived");
        }
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

    /// <summary>Drops the unfinished transfer of a sender that is gone.</summary>
    public void Forget(string sender)
    {
        if (_transfers.TryGetValue(sender, out var transfer)) Drop(sender, transfer);
    }

    private void Drop(string sender, Transfer transfer)
    {
        _transfers.Remove(sender);
        TensorBuffers.Return(transfer.Values);
    }

    private void DropExpired()
    {
        var now = _clock();
        foreach (var (sender, transfer) in _transfers)
            if (now - transfer.StartedAt > Timeout) Drop(sender, transfer); // removing while enumerating is allowed for Dictionary
    }
}
