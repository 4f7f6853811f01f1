using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Threading.Channels;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// The coordinator's end of the tensor data plane: one TCP listener per run, one connection per
/// remote worker. The coordinator expects a worker (<see cref="Expect"/>: a random 32-byte token
/// handed out in WorkerAccepted over Akka); a connection whose first frame is not a Hello with a
/// token that is expected right now is closed. After that the coordinator sends parameters (each
/// version once per connection, the same encoded bytes for every worker) and receives gradient
/// sums; in a ring reduction it receives shard norms and reduced shards and sends updated shards.
/// With a message handler, the step's messages travel here too (<see cref="FrameKind.Message"/>).
/// Every frame is checked against the run (<see cref="DataPlaneRun"/>) before a payload byte is
/// read. Writes are queued per connection and never block the caller; a connection with more than
/// <see cref="MaxQueuedBytes"/> unsent is stalled and is dropped. Whatever breaks a connection is
/// reported once as <see cref="DataConnectionLost"/>. Thread-safe.
/// </summary>
public sealed class DataPlaneServer : IDisposable
{
    /// <summary>Unsent bytes per connection beyond which it is stalled: four whole models (a worker that reads nothing while the coordinator goes on).</summary>
    public long MaxQueuedBytes => 4L * (FrameHeader.Size + (long)_run.ParameterCount * FrameHeader.BytesPerValue(_run.Precision));
    private readonly FrameKind[] _fromWorkers;
    /// <summary>Connections that have not yet shown a valid token; more are closed at once.</summary>
    private const int MaxUnauthenticated = 32;
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);

    private readonly TcpListener _listener;
    private readonly Security.ClusterTls? _tls;
    private readonly DataPlaneRun _run;
    private readonly Action<GradientArrived> _onGradient;
    private readonly Action<ShardArrived>? _onShard;
    private readonly Action<MessageArrived>? _onMessage;
    private readonly Action<DataConnectionLost> _onLost;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<int, byte[]> _tokens = new();
    private readonly ConcurrentDictionary<int, Connection> _connections = new();
    private readonly object _parametersLock = new();
    private (long Version, OutgoingFrame Frame)? _parameters;
    private long _nextConnectionId;

    /// <param name="tls">When given, every connection is TLS: the worker must show a certificate of the cluster's authority before its token is read.</param>
    /// <param name="onShard">Where ring frames (shard norms, reduced shards) go; null refuses them (a star run).</param>
    /// <param name="onMessage">Where results sent as message frames go (<see cref="MessageFrames.FromWorkers"/>); null refuses message frames.</param>
    public DataPlaneServer(string host, int port, DataPlaneRun run, Action<GradientArrived> onGradient, Action<DataConnectionLost> onLost,
        Security.ClusterTls? tls = null, Action<ShardArrived>? onShard = null, Action<MessageArrived>? onMessage = null)
    {
        _onMessage = onMessage;
        _fromWorkers = onMessage is null
            ? [FrameKind.GradientSum, FrameKind.ShardNorm, FrameKind.ReducedShard]
            : [FrameKind.GradientSum, FrameKind.ShardNorm, FrameKind.ReducedShard, FrameKind.Message];
        _tls = tls;
        _run = run;
        _onGradient = onGradient;
        _onShard = onShard;
        _onLost = onLost;
        var address = IPAddress.TryParse(host, out var parsed) ? parsed : Dns.GetHostAddresses(host).First(a => a.AddressFamily == AddressFamily.InterNetwork);
        _listener = new TcpListener(address, port);
        _listener.Start();
        Host = host;
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = TokenHandshake.AcceptLoopAsync(_listener, run, tls, HelloTimeout, MaxUnauthenticated, OnHello, _stopping.Token);
    }

    /// <summary>The address workers connect to (the node's advertised host) and the bound port.</summary>
    public string Host { get; }
    public int Port { get; }

    /// <summary>Makes a fresh token for a registered worker; the worker proves itself with it.</summary>
    public byte[] Expect(int workerKey) => _tokens.GetOrAdd(workerKey, _ => RandomNumberGenerator.GetBytes(FrameHeader.TokenBytes));

    /// <summary>The worker is gone: its token expires and its connection closes (without a <see cref="DataConnectionLost"/>).</summary>
    public void Forget(int workerKey)
    {
        _tokens.TryRemove(workerKey, out _);
        if (_connections.TryRemove(workerKey, out var connection)) connection.Close(null);
    }

    public bool IsConnected(int workerKey) => _connections.ContainsKey(workerKey);

    /// <summary>Whether <paramref name="connectionId"/> is the worker's live connection (a report of an older one is moot).</summary>
    public bool IsCurrent(int workerKey, long connectionId) => _connections.TryGetValue(workerKey, out var c) && c.Id == connectionId;

    /// <summary>
    /// Queues the parameters at <paramref name="version"/> for the worker, unless its connection
    /// already carried that version. <paramref name="parameters"/> is read before this returns.
    /// </summary>
    public ParameterSend SendParameters(int workerKey, long version, ReadOnlySpan<float> parameters)
    {
        if (!_connections.TryGetValue(workerKey, out var connection)) return ParameterSend.NoConnection;
        if (connection.ParameterVersion == version) return ParameterSend.AlreadySent;
        OutgoingFrame frame;
        lock (_parametersLock)
        {
            if (_parameters is not { } cached || cached.Version != version)
            {
                _parameters?.Frame.Release();
                var header = new FrameHeader(FrameKind.Parameters, _run.Precision, _run.RunTag, version, version, -1, parameters.Length, 0);
                _parameters = (version, OutgoingFrame.Encode(header, parameters));
            }
            frame = _parameters.Value.Frame.Retain();
        }
        if (!connection.Enqueue(frame)) return ParameterSend.NoConnection;
        connection.ParameterVersion = version;
        return ParameterSend.Queued;
    }

    /// <summary>
    /// Queues a message for the worker behind whatever is queued for it (the parameters its request needs come first, on
    /// the same connection, so they are there when the request is).
    /// </summary>
    /// <returns>false when the worker has no live connection.</returns>
    public bool SendMessage(int workerKey, Protocol.ITrainingMessage message)
    {
        if (!_connections.TryGetValue(workerKey, out var connection)) return false;
        return connection.Enqueue(OutgoingFrame.Raw(MessageFrames.Frame(_run, message)));
    }

    /// <summary>The ring carried <paramref name="version"/> to the worker (its all-gather): a request at that version sends no parameters.</summary>
    public void MarkCarried(int workerKey, long version)
    {
        if (_connections.TryGetValue(workerKey, out var connection)) connection.ParameterVersion = version;
    }

    /// <summary>Whatever the worker holds is uncertain (a ring broke around it): its next request sends the whole model.</summary>
    public void ForgetCarried(int workerKey) => MarkCarried(workerKey, -1);

    /// <summary>Queues one updated chunk of a ring member's shard (encoded here; <paramref name="values"/> is read before this returns).</summary>
    /// <returns>false when the worker has no live connection.</returns>
    public bool SendUpdate(int workerKey, FrameHeader header, ReadOnlySpan<float> values)
    {
        if (!_connections.TryGetValue(workerKey, out var connection)) return false;
        var frame = OutgoingFrame.Encode(header with { Kind = FrameKind.UpdatedShard, RunTag = _run.RunTag, Precision = _run.Precision, Count = values.Length }, values);
        return connection.Enqueue(frame);
    }

    /// <summary>A connection showed a token: it is kept if a registered worker holds that token (compared in constant time).</summary>
    private void OnHello(Stream stream, byte[] token)
    {
        int workerKey = -1;
        foreach (var (key, expected) in _tokens)
            if (CryptographicOperations.FixedTimeEquals(expected, token)) workerKey = key;
        if (workerKey < 0)
        {
            stream.Dispose(); // a token that no registered worker holds: nothing reported, nothing kept
            return;
        }
        // HelloAccepted is the connection's first frame, and the connection is published before the
        // worker can read it: once the worker reports ready, the coordinator finds its connection.
        var connection = new Connection(this, workerKey, Interlocked.Increment(ref _nextConnectionId), stream);
        connection.Enqueue(OutgoingFrame.Raw(FrameHeader.HelloAccepted(_run)));
        if (_connections.TryGetValue(workerKey, out var previous)) previous.Close(null); // the worker reconnected
        _connections[workerKey] = connection;
        if (!_tokens.ContainsKey(workerKey))
        {
            connection.Close(null); // forgotten while it authenticated
            return;
        }
        connection.Start();
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Stop();
        foreach (var key in _connections.Keys) Forget(key);
        lock (_parametersLock)
        {
            _parameters?.Frame.Release();
            _parameters = null;
        }
    }

    /// <summary>One worker's connection: a queue of frames to write, a loop that writes them, a loop that reads gradients.</summary>
    private sealed class Connection(DataPlaneServer server, int workerKey, long id, Stream stream)
    {
        // One reader, the write loop (it also drains what is left when the connection closes): its waits then reuse one
        // operation object instead of allocating one per frame.
        private readonly Channel<OutgoingFrame> _outgoing = Channel.CreateUnbounded<OutgoingFrame>(new UnboundedChannelOptions { SingleReader = true });
        private readonly TensorStream _tensors = new(stream, server._run);
        private long _queuedBytes;
        private int _closed;

        public long Id { get; } = id;
        /// <summary>The parameter version this connection last carried (written by the coordinator's thread only).</summary>
        public long ParameterVersion { get; set; } = -1;

        public void Start()
        {
            _ = WriteLoopAsync();
            new Thread(ReadLoop) { IsBackground = true, Name = $"data-plane reader {workerKey}" }.Start();
        }

        public bool Enqueue(OutgoingFrame frame)
        {
            if (Interlocked.Add(ref _queuedBytes, frame.Bytes.Length) > server.MaxQueuedBytes)
            {
                Interlocked.Add(ref _queuedBytes, -frame.Bytes.Length);
                frame.Release();
                Close($"stalled: more than {server.MaxQueuedBytes} bytes unsent");
                return false;
            }
            if (_outgoing.Writer.TryWrite(frame)) return true;
            frame.Release(); // closed meanwhile
            return false;
        }

        /// <summary>
        /// Writes queued frames until the connection closes. No cancellation token on the waits and writes (registering one
        /// allocates per call): closing completes the queue, which ends the wait, and disposes the stream, which ends a write.
        /// </summary>
        private async Task WriteLoopAsync()
        {
            var reader = _outgoing.Reader;
            try
            {
                while (await reader.WaitToReadAsync().ConfigureAwait(false))
                    while (reader.TryRead(out var frame))
                    {
                        try
                        {
                            await stream.WriteAsync(frame.Bytes).ConfigureAwait(false);
                        }
                        finally
                        {
                            Interlocked.Add(ref _queuedBytes, -frame.Bytes.Length);
                            frame.Release();
                        }
                    }
            }
            catch (Exception e)
            {
                Close($"sending failed: {e.Message}");
            }
            while (reader.TryRead(out var left)) left.Release(); // queued when it closed
        }

        private void ReadLoop() => Close(_tensors.ReadUntilClosed(server._fromWorkers, Deliver, "the worker", DeliverMessage));

        private void DeliverMessage(FrameHeader header, byte[] payload) =>
            server._onMessage!(new MessageArrived(workerKey, Id, MessageFrames.Decode(payload, MessageFrames.FromWorkers)));

        private void Deliver(FrameHeader header, float[] values)
        {
            if (header.Kind == FrameKind.GradientSum)
            {
                server._onGradient(new GradientArrived(workerKey, Id, header, values));
                return;
            }
            if (server._onShard is null)
            {
                TensorBuffers.Return(values);
                throw new InvalidDataException($"a {header.Kind} frame in a run that reduces by star");
            }
            server._onShard(new ShardArrived(workerKey, Id, header, values));
        }

        /// <param name="reason">Why, reported as <see cref="DataConnectionLost"/>; null when closed on purpose (nothing reported).</param>
        public void Close(string? reason)
        {
            if (Interlocked.Exchange(ref _closed, 1) == 1) return;
            _outgoing.Writer.TryComplete(); // the write loop releases what is still queued
            stream.Dispose();
            server._connections.TryRemove(new KeyValuePair<int, Connection>(workerKey, this));
            if (reason is not null && !server._stopping.IsCancellationRequested) server._onLost(new DataConnectionLost(workerKey, Id, reason));
        }
    }
}
