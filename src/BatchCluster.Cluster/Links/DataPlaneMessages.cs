using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

// The messages of the data plane, in one place: what the coordinator hands a worker to connect
// with, what both ends check every frame against, and what a connection's reader threads post to
// the actor that owns the connection. Whoever receives a message with a Values array owns it (a
// buffer from TensorBuffers) and returns it to the pool when done.

/// <summary>What both ends of a data connection agree on for a run: every frame is checked against it.</summary>
/// <param name="ParameterCount">The model's flat length: the only tensor size a frame may declare.</param>
public sealed record DataPlaneRun(ulong RunTag, int ParameterCount, TransferPrecision Precision);

/// <summary>Where and how a worker reaches the coordinator's data plane (handed out in WorkerAccepted).</summary>
/// <param name="Ring">The run reduces by ring: the worker opens a listener for its ring neighbour and keeps its gradient sums until asked to reduce them.</param>
public sealed record DataPlaneOffer(string Host, int Port, byte[] Token, TransferPrecision Precision, bool Ring = false);

/// <summary>
/// Parameters that arrived on the data connection, or that a ring's all-gather put together
/// (<paramref name="FromRing"/>); the receiver owns <see cref="Values"/> (a pooled buffer).
/// </summary>
public sealed record ParametersArrived(long ConnectionId, long Version, float[] Values, bool FromRing = false);

/// <summary>A gradient sum that arrived on a worker's data connection; the receiver owns <see cref="Values"/> (a pooled buffer).</summary>
public sealed record GradientArrived(int WorkerKey, long ConnectionId, FrameHeader Header, float[] Values);

/// <summary>A share's result message that arrived on a worker's data connection (a message frame) rather than through Akka.Remote.</summary>
public sealed record MessageArrived(int WorkerKey, long ConnectionId, Protocol.ITrainingMessage Message);

/// <summary>
/// A ring member's frame on its data connection: a shard norm (no values; <see cref="FrameHeader.Scalar"/>)
/// or a chunk of its reduced shard. The receiver owns <see cref="Values"/> (a pooled buffer, empty for a norm).
/// </summary>
public sealed record ShardArrived(int WorkerKey, long ConnectionId, FrameHeader Header, float[] Values);

/// <summary>A chunk of a ring member's shard, updated by the coordinator, on the member's data connection; the receiver owns <see cref="Values"/>.</summary>
public sealed record UpdateArrived(long ConnectionId, FrameHeader Header, float[] Values);

/// <summary>What <see cref="DataPlaneServer.SendParameters"/> did.</summary>
public enum ParameterSend
{
    /// <summary>The worker has no live data connection: its request cannot be served.</summary>
    NoConnection,
    /// <summary>This connection carried that version already.</summary>
    AlreadySent,
    Queued,
}

/// <summary>A worker's data connection broke or was refused mid-way: to the coordinator, a worker failure.</summary>
public sealed record DataConnectionLost(int WorkerKey, long ConnectionId, string Reason);
