using System.Collections.Concurrent;
using System.Net.Sockets;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Reduction;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

/// <summary>Why a ring member's part of a reduction failed; <see cref="UpstreamSuspected"/>: its upstream link broke or sent a bad frame.</summary>
public sealed record RingFailure(long Step, int Generation, string Reason, bool UpstreamSuspected);

/// <summary>
/// A worker's part in ring reductions (docs/architecture.md, "The ring"), run on a thread of its
/// own so the worker's actor stays free. For each <see cref="Reduction"/> it (re)opens its links
/// when the ring's epoch changes (downstream: connect and show the token; upstream: claim the
/// connection that shows the expected token), then follows <see cref="RingLayout"/>:
/// reduce-scatter into the host's gradient sum (received chunk + own sum, forwarded); its owned
/// shard's squared norm, then the shard, to the coordinator; the updated chunks back from the
/// coordinator into the next parameters, forwarded; the all-gather into the next parameters. Then
/// the next parameters go to the worker as <see cref="ParametersArrived"/> (the worker owns them).
/// Every frame from upstream is checked against the one the layout says is due (step, generation,
/// phase, range) before its payload is read.
/// <para>Buffers: the host sum belongs to the member from <see cref="Start"/> on; it and the next
/// parameters are read by the link writer until the writer is drained, and neither is written in a
/// range that is queued (a range is written once per phase, then forwarded). On a failure or an
/// abort the links close and both buffers are left to the garbage collector, never pooled while a
/// writer might still read them.</para>
/// </summary>
public sealed class RingMember : IDisposable
{
    /// <summary>What the coordinator asked for (ReduceShares), with the host's summed shares and the coordinator's link.</summary>
    public sealed record Reduction(long Step, long Version, int Generation, long Epoch, int Index, int Members, int ChunkValues,
        TrainingProtocol.RingPeer Downstream, byte[] UpstreamToken, float[] HostSum, DataPlaneClient Coordinator);

    private static readonly TimeSpan LinkTimeout = TimeSpan.FromSeconds(10);
    private static readonly FrameKind[] RingChunk = [FrameKind.RingChunk];
    private const int ReducePhase = 0, GatherPhase = 1;

    private readonly RingListener _listener;
    private readonly DataPlaneRun _run;
    private readonly Security.ClusterTls? _tls;
    private readonly Action<ParametersArrived> _onParameters;
    private readonly Action<RingFailure> _onFailed;
    private readonly Action<long, string>? _testingHook;
    private readonly BlockingCollection<Reduction> _reductions = new();
    private readonly BlockingCollection<UpdateArrived> _updates = new();
    private readonly Thread _thread;
    private readonly object _gate = new();

    private float[] _scratch = []; // the engine thread's

    // Shared with the callers, under _gate: the links (closed from any thread to unblock the engine) and the running reduction.
    private long _epoch = -1;
    private RingLinkWriter? _downstream;
    private TensorStream? _upstream;
    private Reduction? _running;
    private CancellationTokenSource? _cancel;
    private string? _stopReason;
    private string? _downstreamFailure;
    private bool _skipped;

    /// <param name="host">This node's address: the ring listener binds there.</param>
    /// <param name="onParameters">The next parameters after an all-gather; the receiver owns the values.</param>
    /// <param name="onFailed">A reduction that failed here (not one aborted on purpose).</param>
    /// <param name="testingHook">FOR TESTS: called on the engine's thread with (step, "reduce") once the first chunk of a
    /// reduce-scatter has arrived and with (step, "gather") once the first updated chunk has been forwarded, so a test can
    /// kill or stop the member at that very point.</param>
    public RingMember(string host, DataPlaneRun run, Security.ClusterTls? tls, Action<ParametersArrived> onParameters, Action<RingFailure> onFailed,
        Action<long, string>? testingHook = null)
    {
        _testingHook = testingHook;
        _run = run;
        _tls = tls;
        _onParameters = onParameters;
        _onFailed = onFailed;
        _listener = new RingListener(host, run, tls);
        _thread = new Thread(EngineLoop) { IsBackground = true, Name = "ring member" };
        _thread.Start();
    }

    /// <summary>The port the upstream neighbour connects to.</summary>
    public int Port => _listener.Port;

    /// <summary>Starts a reduction; one still running is aborted first (the coordinator re-formed the ring).</summary>
    public void Start(Reduction reduction)
    {
        while (_reductions.TryTake(out var stale)) TensorBuffers.Return(stale.HostSum); // never started: nothing reads it
        Abort("superseded by a new reduction");
        _reductions.Add(reduction);
    }

    /// <summary>An updated chunk from the coordinator (the data connection's reader thread); the member owns its values.</summary>
    public void OnUpdate(UpdateArrived update) => _updates.Add(update);

    /// <summary>The coordinator did not apply <paramref name="step"/>: its reduction ends here, the links stay (nothing of it is in flight).</summary>
    public void Skip(long step)
    {
        lock (_gate)
        {
            if (_running?.Step != step || _cancel is null) return;
            _skipped = true;
            _cancel.Cancel();
        }
    }

    /// <summary>Ends the running reduction, if any, without a report, and closes the links (they may be mid-frame).</summary>
    public void Abort(string why)
    {
        lock (_gate)
        {
            if (_running is null || _cancel is null) return;
            _stopReason = why;
            _cancel.Cancel();
        }
        CloseLinks(); // unblocks a read or a write in progress
    }

    /// <summary>The writer's link broke: the running reduction fails (reported), the links close.</summary>
    private void DownstreamFailed(string reason)
    {
        lock (_gate)
        {
            if (_running is null || _cancel is null) return;
            _downstreamFailure ??= $"the ring link to downstream failed: {reason}";
            _cancel.Cancel();
        }
        CloseLinks();
    }

    /// <summary>The version the running reduction will produce, or null.</summary>
    public long? Producing
    {
        get
        {
            lock (_gate) return _running is { } r ? r.Version + 1 : null;
        }
    }

    private void EngineLoop()
    {
        foreach (var reduction in _reductions.GetConsumingEnumerable())
        {
            CancellationToken cancellation;
            lock (_gate)
            {
                _running = reduction;
                _cancel = new CancellationTokenSource();
                _stopReason = null;
                _downstreamFailure = null;
                _skipped = false;
                cancellation = _cancel.Token;
            }
            RingFailure? failure = null;
            try
            {
                Run(reduction, cancellation);
            }
            catch (Exception e)
            {
                bool quiet, skipped;
                string? downstreamFailure;
                lock (_gate)
                {
                    quiet = _stopReason is not null;
                    skipped = _skipped;
                    downstreamFailure = _downstreamFailure;
                }
                if (skipped && e is OperationCanceledException)
                {
                    // Nothing of the step is in flight: the links stay, the host sum can be pooled once the writer is idle.
                    try
                    {
                        RingLinkWriter? downstream;
                        lock (_gate) downstream = _downstream;
                        downstream?.Drain(CancellationToken.None);
                        TensorBuffers.Return(reduction.HostSum);
                    }
                    catch (IOException)
                    {
                        CloseLinks();
                    }
                }
                else
                {
                    CloseLinks();
                    if (!quiet)
                        failure = downstreamFailure is not null
                            ? new RingFailure(reduction.Step, reduction.Generation, downstreamFailure, UpstreamSuspected: false)
                            : new RingFailure(reduction.Step, reduction.Generation, e.Message, IsUpstreamFault(e));
                }
            }
            finally
            {
                lock (_gate)
                {
                    _running = null;
                    _cancel?.Dispose();
                    _cancel = null;
                }
            }
            if (failure is not null) _onFailed(failure);
        }
    }

    /// <summary>Whether an error came from what the upstream neighbour did (its link ended or it sent a frame that was not due).</summary>
    private static bool IsUpstreamFault(Exception e) => e is UpstreamException;

    private sealed class UpstreamException(string message, Exception? inner = null) : IOException(message, inner);

    private void Run(Reduction r, CancellationToken cancellation)
    {
        var layout = new RingLayout(_run.ParameterCount, r.Members, r.ChunkValues);
        RingLinkWriter? downstream = null;
        TensorStream? upstream = null;
        if (r.Members > 1) (downstream, upstream) = EnsureLinks(r, cancellation);
        if (_scratch.Length < r.ChunkValues) _scratch = new float[Math.Min(r.ChunkValues, _run.ParameterCount)];
        int k = r.Index;
        var sum = r.HostSum;

        // Reduce-scatter: own segment out, then each received chunk plus the own sum, forwarded until the last round.
        if (r.Members > 1)
        {
            foreach (var chunk in layout.Chunks(layout.ReduceSendSegment(k, 0))) Send(downstream!, r, ReducePhase, sum, chunk);
            for (int t = 0; t < layout.Rounds; t++)
                foreach (var chunk in layout.Chunks(layout.ReduceReceiveSegment(k, t)))
                {
                    var received = _scratch.AsSpan(0, chunk.Length);
                    Receive(upstream!, r, ReducePhase, chunk, received);
                    if (t == 0 && chunk.Offset == layout.Segment(layout.ReduceReceiveSegment(k, 0)).Offset) _testingHook?.Invoke(r.Step, "reduce");
                    FlatMath.AddInPlace(sum.AsSpan(chunk.Offset, chunk.Length), received);
                    if (t < layout.Rounds - 1) Send(downstream!, r, ReducePhase, sum, chunk);
                }
        }

        // The owned shard: its norm ahead (of exactly the values sent), then its chunks, to the coordinator.
        var owned = layout.Segment(layout.OwnedShard(k));
        var shard = sum.AsSpan(owned.Offset, owned.Length);
        if (_run.Precision == TransferPrecision.Bf16)
            for (int i = 0; i < shard.Length; i++) shard[i] = FramePayload.FromBf16(FramePayload.ToBf16(shard[i]));
        var coordinator = r.Coordinator;
        coordinator.SendShard(new FrameHeader(FrameKind.ShardNorm, _run.Precision, 0, r.Step, r.Version, k, 0, 0)
            { Generation = r.Generation, Scalar = FlatMath.SquaredNorm(shard) }, ReadOnlySpan<float>.Empty);
        foreach (var chunk in layout.Chunks(layout.OwnedShard(k)))
            coordinator.SendShard(new FrameHeader(FrameKind.ReducedShard, _run.Precision, 0, r.Step, r.Version, k, chunk.Length, 0)
                { Generation = r.Generation, Offset = chunk.Offset }, sum.AsSpan(chunk.Offset, chunk.Length));

        // The updated shard from the coordinator, forwarded as the all-gather's first round.
        var next = TensorBuffers.Rent(_run.ParameterCount);
        foreach (var chunk in layout.Chunks(layout.OwnedShard(k)))
        {
            var update = NextUpdate(r, chunk, cancellation);
            update.Values.CopyTo(next, chunk.Offset);
            TensorBuffers.Return(update.Values);
            if (r.Members > 1) Send(downstream!, r, GatherPhase, next, chunk);
            if (chunk.Offset == owned.Offset) _testingHook?.Invoke(r.Step, "gather");
        }

        // All-gather: every other segment from upstream, straight into the next parameters, forwarded until the last round.
        for (int t = 0; t < layout.Rounds; t++)
            foreach (var chunk in layout.Chunks(layout.GatherReceiveSegment(k, t)))
            {
                Receive(upstream!, r, GatherPhase, chunk, next.AsSpan(chunk.Offset, chunk.Length));
                if (t < layout.Rounds - 1) Send(downstream!, r, GatherPhase, next, chunk);
            }
        downstream?.Drain(cancellation);
        TensorBuffers.Return(sum);
        // Done with the links: from here a new reduction must not abort this one (the worker may start the next step's
        // reduction the moment it has these parameters, before this thread is scheduled again).
        lock (_gate) _running = null;
        _onParameters(new ParametersArrived(coordinator.Id, r.Version + 1, next, FromRing: true));
    }

    private void Send(RingLinkWriter downstream, Reduction r, int phase, float[] source, ModelRange chunk) =>
        downstream.Enqueue(new FrameHeader(FrameKind.RingChunk, _run.Precision, 0, r.Step, r.Version, phase, chunk.Length, 0)
            { Generation = r.Generation, Offset = chunk.Offset }, source, chunk);

    /// <summary>Reads the chunk the layout says is due from upstream into <paramref name="destination"/>; anything else is the upstream's fault.</summary>
    private static void Receive(TensorStream upstream, Reduction r, int phase, ModelRange chunk, Span<float> destination)
    {
        try
        {
            var header = upstream.ReadHeader(RingChunk);
            if (header.Step != r.Step || header.Generation != r.Generation || header.Version != r.Version || header.Slot != phase
                || header.Offset != chunk.Offset || header.Count != chunk.Length)
                throw new InvalidDataException($"a ring chunk of step {header.Step} generation {header.Generation} phase {header.Slot} for [{header.Offset}, "
                                               + $"{header.Offset + header.Count}) where [{chunk.Offset}, {chunk.End}) of step {r.Step} generation {r.Generation} phase {phase} was due");
            upstream.ReadPayload(header, destination);
        }
        catch (EndOfStreamException e)
        {
            throw new UpstreamException("the upstream neighbour closed the ring link", e);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or SocketException or ObjectDisposedException)
        {
            throw new UpstreamException($"the ring link from upstream failed: {e.Message}", e);
        }
    }

    /// <summary>The coordinator's update of <paramref name="chunk"/>; updates of earlier reductions still queued are dropped.</summary>
    private UpdateArrived NextUpdate(Reduction r, ModelRange chunk, CancellationToken cancellation)
    {
        while (true)
        {
            var update = _updates.Take(cancellation);
            var h = update.Header;
            if (update.ConnectionId != r.Coordinator.Id || h.Step < r.Step || (h.Step == r.Step && h.Generation < r.Generation))
            {
                TensorBuffers.Return(update.Values); // of an aborted reduction
                continue;
            }
            if (h.Step != r.Step || h.Generation != r.Generation || h.Version != r.Version + 1 || h.Offset != chunk.Offset || h.Count != chunk.Length)
            {
                TensorBuffers.Return(update.Values);
                throw new InvalidDataException($"the coordinator sent an update of [{h.Offset}, {h.Offset + h.Count}) for step {h.Step} where [{chunk.Offset}, {chunk.End}) of step {r.Step} was due");
            }
            return update;
        }
    }

    /// <summary>
    /// Opens the links of a new epoch (or reopens closed ones). The connection downstream and the
    /// claim of the upstream's connection run at once: a member's downstream answers only once its
    /// own engine claims the connection, so connecting first and claiming after would wait in a
    /// circle around the ring.
    /// </summary>
    private (RingLinkWriter Downstream, TensorStream Upstream) EnsureLinks(Reduction r, CancellationToken cancellation)
    {
        lock (_gate)
            if (r.Epoch == _epoch && _downstream is { } open && _upstream is { } reading) return (open, reading);
        CloseLinks();
        var connecting = Task.Run(() => ConnectDownstream(r.Downstream));
        Stream upstream;
        try
        {
            upstream = _listener.Claim(r.UpstreamToken, LinkTimeout, cancellation);
        }
        catch (Exception e)
        {
            connecting.ContinueWith(t => t.Result.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
            if (e is IOException) throw new UpstreamException(e.Message, e);
            throw;
        }
        Stream stream;
        try
        {
            stream = connecting.GetAwaiter().GetResult();
        }
        catch
        {
            upstream.Dispose();
            throw;
        }
        lock (_gate)
        {
            if (cancellation.IsCancellationRequested)
            {
                stream.Dispose();
                upstream.Dispose();
                cancellation.ThrowIfCancellationRequested();
            }
            _downstream = new RingLinkWriter(new TensorStream(stream, _run), DownstreamFailed);
            _upstream = new TensorStream(upstream, _run);
            _epoch = r.Epoch;
            return (_downstream, _upstream);
        }
    }

    private Stream ConnectDownstream(TrainingProtocol.RingPeer peer) =>
        TokenHandshake.Connect(peer.Host, peer.Port, peer.Token, _run, _tls, LinkTimeout, "the ring link",
            $"the ring neighbour at {peer.Host}:{peer.Port} closed the link: it did not accept this member's token");

    private void CloseLinks()
    {
        RingLinkWriter? downstream;
        TensorStream? upstream;
        lock (_gate)
        {
            downstream = _downstream;
            upstream = _upstream;
            _downstream = null;
            _upstream = null;
            _epoch = -1;
        }
        downstream?.Dispose();
        upstream?.Stream.Dispose();
    }

    public void Dispose()
    {
        Abort("the worker stopped");
        _reductions.CompleteAdding();
        CloseLinks();
        _listener.Dispose();
        while (_updates.TryTake(out var update)) TensorBuffers.Return(update.Values);
    }
}
