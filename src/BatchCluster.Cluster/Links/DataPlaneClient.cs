using System.Net.Sockets;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// A worker's end of the data plane: connects, proves itself with the token from WorkerAccepted,
/// waits for HelloAccepted, then reads frames on a background loop (each one checked: kind, run,
/// precision, size, checksum): whole parameters, and in a ring run the updated chunks of its shard.
/// Writes (gradient sums; a ring member's shard norm and reduced shard) come from the worker's
/// threads, one at a time. A broken connection is reported once through <c>onLost</c>.
/// </summary>
public sealed class DataPlaneClient : IDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private static long _nextId;

    private readonly TensorStream _tensors;
    private readonly FrameKind[] _fromCoordinator;
    private readonly Action<ParametersArrived> _onParameters;
    private readonly Action<Protocol.ITrainingMessage>? _onMessage;
    private readonly object _writing = new();
    /// <summary>Where updated shard chunks go (the ring member); set once the worker joins a ring run.</summary>
    public Action<UpdateArrived>? OnUpdate { get; set; }
    private readonly Action<string> _onLost;
    private int _closed;

    public long Id { get; } = Interlocked.Increment(ref _nextId);
    public DataPlaneOffer Offer { get; }

    private DataPlaneClient(Stream stream, DataPlaneOffer offer, DataPlaneRun run, Action<ParametersArrived> onParameters, Action<string> onLost,
        Action<Protocol.ITrainingMessage>? onMessage)
    {
        Offer = offer;
        _onMessage = onMessage;
        _fromCoordinator = onMessage is null ? [FrameKind.Parameters, FrameKind.UpdatedShard] : [FrameKind.Parameters, FrameKind.UpdatedShard, FrameKind.Message];
        _tensors = new TensorStream(stream, run);
        _onParameters = onParameters;
        _onLost = onLost;
    }

    /// <summary>Connects and authenticates (blocking, at most about 10 s), then starts reading parameters.</summary>
    /// <exception cref="IOException">The coordinator's data plane could not be reached or refused the token.</exception>
    /// <param name="tls">When given, the connection is TLS with this node's certificate, and the coordinator's must chain to the cluster's authority.</param>
    /// <param name="onMessage">Where requests sent as message frames go (<see cref="MessageFrames.FromCoordinator"/>); null refuses message frames.</param>
    public static DataPlaneClient Connect(DataPlaneOffer offer, DataPlaneRun run, Action<ParametersArrived> onParameters, Action<string> onLost,
        Security.ClusterTls? tls = null, Action<Protocol.ITrainingMessage>? onMessage = null)
    {
        var stream = TokenHandshake.Connect(offer.Host, offer.Port, offer.Token, run, tls, ConnectTimeout, "the data connection",
            $"the coordinator at {offer.Host}:{offer.Port} closed the data connection: it did not accept this worker's token");
        var client = new DataPlaneClient(stream, offer, run, onParameters, onLost, onMessage);
        new Thread(client.ReadLoop) { IsBackground = true, Name = "data-plane reader" }.Start();
        return client;
    }

    /// <summary>Sends one gradient sum (blocking until the bytes are with the kernel); the caller may reuse <paramref name="values"/> after.</summary>
    /// <exception cref="IOException">The connection is broken (it is then closed and reported).</exception>
    public void SendGradient(long step, long version, int slot, ReadOnlySpan<float> values) =>
        Send(new FrameHeader(FrameKind.GradientSum, Offer.Precision, RunTag: 0, step, version, slot, values.Length, Checksum: 0), values, "a gradient");

    /// <summary>Sends a ring member's frame to the coordinator (a shard norm, or a chunk of its reduced shard); blocking, like <see cref="SendGradient"/>.</summary>
    /// <exception cref="IOException">The connection is broken (it is then closed and reported).</exception>
    public void SendShard(FrameHeader header, ReadOnlySpan<float> values) => Send(header, values, $"a {header.Kind} frame");

    /// <summary>Sends a message (a share's result) behind what this worker sent before on the connection; blocking, like <see cref="SendGradient"/>.</summary>
    /// <exception cref="IOException">The connection is broken (it is then closed and reported).</exception>
    public void SendMessage(Protocol.ITrainingMessage message)
    {
        var frame = MessageFrames.Frame(_tensors.Run, message);
        try
        {
            lock (_writing) _tensors.Stream.Write(frame);
        }
        catch (Exception e) when (IsBreak(e))
        {
            throw Broke(e, "a message");
        }
    }

    private void Send(FrameHeader header, ReadOnlySpan<float> values, string what)
    {
        try
        {
            lock (_writing) _tensors.Write(header, values);
        }
        catch (Exception e) when (IsBreak(e))
        {
            throw Broke(e, what);
        }
    }

    private static bool IsBreak(Exception e) => e is IOException or ObjectDisposedException or SocketException;

    /// <summary>A write failed: the connection is closed (and reported), and the caller gets why.</summary>
    private IOException Broke(Exception e, string what)
    {
        Close($"sending failed: {e.Message}");
        return new IOException($"the data connection broke while sending {what}: {e.Message}", e);
    }

    private void ReadLoop() => Close(_tensors.ReadUntilClosed(_fromCoordinator, Deliver, "the coordinator", DeliverMessage));

    private void DeliverMessage(FrameHeader header, byte[] payload) => _onMessage!(MessageFrames.Decode(payload, MessageFrames.FromCoordinator));

    private void Deliver(FrameHeader header, float[] values)
    {
        if (header.Kind == FrameKind.Parameters)
        {
            _onParameters(new ParametersArrived(Id, header.Version, values));
            return;
        }
        if (OnUpdate is not { } onUpdate)
        {
            TensorBuffers.Return(values);
            throw new InvalidDataException("an updated shard on a connection that is in no ring");
        }
        onUpdate(new UpdateArrived(Id, header, values));
    }

    private void Close(string? reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) == 1) return;
        _tensors.Stream.Dispose();
        if (reason is not null) _onLost(reason);
    }

    /// <summary>Closes on purpose (nothing reported).</summary>
    public void Dispose() => Close(null);
}
