using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

/// <summary>How a worker's tensors travel, chosen once when it registers.</summary>
public enum TensorRoute
{
    /// <summary>A worker in the coordinator's process: messages carry shared arrays (no copy).</summary>
    InProcess,
    /// <summary>Tensors inside Akka messages, cut into chunks (<c>--tensor-transport akka</c>).</summary>
    Akka,
    /// <summary>Tensors on the worker's own data connection, the message carrying an empty tensor.</summary>
    DataPlane,
}

/// <summary>What the coordinator's links need to know of the run and the node.</summary>
/// <param name="Host">The address workers connect to (this node's advertised host).</param>
/// <param name="Ring">The run reduces by ring: data-plane workers keep their gradient sums for the ring, and shards travel here.</param>
public sealed record CoordinatorLinkSettings(string RunId, int ParameterCount, TransferPrecision Precision, bool UseDataPlane, int DataPort,
    string Host, Security.ClusterTls? Tls, bool Ring = false);

/// <summary>
/// The coordinator's end of every tensor route (docs/architecture.md, "Tensor routes"): it lends
/// parameter snapshots to in-process workers, sends work with the parameters each route needs,
/// reassembles chunked Akka transfers, joins the two halves of a data-plane result (the gradient
/// and the message, in either order: in a star run both on the data connection, the message as a
/// frame of its own; in a ring the message over Akka), returns every gradient buffer
/// to the pool, and counts the tensor bytes of a step. The actor sees only whole results and
/// keeps what is its own: phases, rounds and membership. In a ring run it also carries the ring's
/// frames at the coordinator: shard norms and reduced shards in (<see cref="ShardArrived"/>),
/// updated shards out, and which parameter version each worker's connection already holds. Used by
/// one actor only (not thread-safe); the data plane's reader threads reach it through messages to
/// that actor.
/// </summary>
public sealed class CoordinatorLinks : IDisposable
{
    private readonly CoordinatorLinkSettings _settings;
    private readonly IActorRef _owner;
    private readonly ILoggingAdapter _log;
    private readonly TensorReassembly _reassembly = new();
    private readonly ParameterSnapshots _snapshots = new();
    private readonly Dictionary<int, TensorRoute> _routes = [];
    /// <summary>Ring runs: the port each worker's ring listener has (from WorkerReady).</summary>
    private readonly Dictionary<int, int> _ringPorts = [];
    /// <summary>Tensor bytes through each worker's link in the step in flight (both directions).</summary>
    private readonly Dictionary<int, long> _workerBytes = [];
    /// <summary>A data-plane result's two halves, each waiting for the other within the current step only.</summary>
    private readonly Dictionary<(int Worker, int Slot), float[]> _gradientsWithoutMessage = [];
    private readonly Dictionary<(int Worker, int Slot), TrainingProtocol.ShareComputed> _messagesWithoutGradient = [];
    /// <summary>The data plane's listener, opened when the first worker from another process registers (null: none yet, or off).</summary>
    private DataPlaneServer? _dataPlane;

    /// <param name="owner">The actor that owns these links: the data plane's threads post <see cref="GradientArrived"/> and <see cref="DataConnectionLost"/> to it.</param>
    public CoordinatorLinks(CoordinatorLinkSettings settings, IActorRef owner, ILoggingAdapter log)
    {
        _settings = settings;
        _owner = owner;
        _log = log;
        _reassembly.ExpectedLength = settings.ParameterCount; // gradient sums: exactly the model's size
    }

    /// <summary>Tensor payload bytes sent to and received from workers in other processes for the step in flight (parameters, sample ids, gradients).</summary>
    public long StepBytes { get; private set; }

    /// <summary>
    /// The same for workers in this process: arrays handed over by reference, nothing copied or
    /// sent. Counted apart so a report says what crossed a wire and what only changed hands.
    /// </summary>
    public long StepHandedOverBytes { get; private set; }

    /// <summary>The most tensor bytes one worker's link carried in the step in flight (both directions); in-process workers have no link.</summary>
    public long BusiestWorkerBytes => _workerBytes.Count == 0 ? 0 : _workerBytes.Values.Max();

    private void Count(int worker, long bytes)
    {
        if (RouteOf(worker) == TensorRoute.InProcess)
        {
            StepHandedOverBytes += bytes;
            return;
        }
        StepBytes += bytes;
        _workerBytes[worker] = _workerBytes.GetValueOrDefault(worker) + bytes;
    }

    /// <summary>Bytes a worker's link carried that did not pass the coordinator's (a ring's traffic between workers).</summary>
    public void CountBetweenWorkers(int worker, long bytes) => _workerBytes[worker] = _workerBytes.GetValueOrDefault(worker) + bytes;

    public int BytesPerValueOnTheWire => FrameHeader.BytesPerValue(_settings.Precision);

    /// <summary>Whether <paramref name="target"/> would read the very arrays sent to it (it lives in this process).</summary>
    public static bool SharesMemoryWith(IActorRef target) => TensorTransport.SharesMemoryWith(target);

    private int BytesPerValue(int worker) =>
        RouteOf(worker) == TensorRoute.DataPlane ? FrameHeader.BytesPerValue(_settings.Precision) : sizeof(float);

    public TensorRoute RouteOf(int worker) => _routes.GetValueOrDefault(worker, TensorRoute.InProcess);

    // ---- membership ----

    /// <summary>
    /// Chooses the route of a worker the coordinator accepts (again). For a worker in another
    /// process with the data plane on: where its data connection goes and the token it proves
    /// itself with (the listener opens with the first such worker); null otherwise.
    /// </summary>
    public DataPlaneOffer? Accept(int worker, IActorRef handle)
    {
        if (SharesMemoryWith(handle))
        {
            _routes[worker] = TensorRoute.InProcess;
            return null;
        }
        if (!_settings.UseDataPlane)
        {
            _routes[worker] = TensorRoute.Akka;
            return null;
        }
        _routes[worker] = TensorRoute.DataPlane;
        if (_dataPlane is null)
        {
            var owner = _owner;
            var run = new DataPlaneRun(FrameHeader.TagOf(_settings.RunId), _settings.ParameterCount, _settings.Precision);
            _dataPlane = new DataPlaneServer(_settings.Host, _settings.DataPort, run, arrived => owner.Tell(arrived), lost => owner.Tell(lost), _settings.Tls,
                _settings.Ring ? shard => owner.Tell(shard) : null, _settings.Ring ? null : message => owner.Tell(message));
            _log.Info("Data plane listening on {0}:{1} ({2}, {3})", _dataPlane.Host, _dataPlane.Port, run.Precision, _settings.Tls is null ? "plain TCP" : "TLS");
        }
        return new DataPlaneOffer(_dataPlane.Host, _dataPlane.Port, _dataPlane.Expect(worker), _settings.Precision, _settings.Ring);
    }

    /// <summary>How the worker's tensors travel, for the log: <c>in-process</c>, <c>data plane HOST:PORT (fp32|bf16)</c> or <c>akka</c>.</summary>
    public string Describe(int worker) => RouteOf(worker) switch
    {
        TensorRoute.DataPlane => $"data plane {_dataPlane!.Host}:{_dataPlane.Port} ({_settings.Precision.ToString().ToLowerInvariant()})",
        TensorRoute.Akka => "akka",
        _ => "in-process",
    };

    /// <summary>The worker is gone: it reads no snapshot any more, its data connection closes, its half-arrived results and chunks are dropped.</summary>
    public void Forget(int worker, IActorRef handle)
    {
        _snapshots.Gone(worker);
        _dataPlane?.Forget(worker);
        ForgetHalves(worker);
        _reassembly.Forget(handle.Path.ToString());
    }

    /// <summary>Whether a lost data connection still matters: the worker has not connected again since.</summary>
    public bool StillLost(DataConnectionLost lost) => _dataPlane is null || !_dataPlane.IsConnected(lost.WorkerKey);

    // ---- requests ----

    /// <summary>A new step: its byte count starts at zero.</summary>
    public void BeginStep()
    {
        StepBytes = 0;
        StepHandedOverBytes = 0;
        _workerBytes.Clear();
    }

    /// <summary>Sends a share of <paramref name="step"/> with the parameters its route needs; counts ids and parameters.</summary>
    public void SendShare(IActorRef target, int worker, string runId, long step, int slot, int[] ids, int microBatch, long version, ReadOnlySpan<float> parameters,
        TrainingProtocol.ReduceShares? thenReduce = null, int halfAt = 0)
    {
        Count(worker, sizeof(int) * (long)ids.Length);
        var snapshot = ParametersFor(worker, target, version, parameters, count: true);
        var share = new TrainingProtocol.ComputeShare(runId, step, slot, ids, microBatch, snapshot, thenReduce, halfAt);
        // In a star run over the data plane the request follows its parameters on the worker's connection: one reader
        // thread delivers both. Without a connection ParametersFor has reported it; a connection that closed since reports itself.
        if (RouteOf(worker) == TensorRoute.DataPlane && !_settings.Ring) _dataPlane?.SendMessage(worker, share);
        else TensorTransport.Tell(target, share, _owner);
    }

    /// <summary>Whether a message from the data plane came on the worker's live connection (one that was replaced or closed since is moot).</summary>
    public bool IsCurrent(MessageArrived arrived) => _dataPlane?.IsCurrent(arrived.WorkerKey, arrived.ConnectionId) == true;

    /// <summary>Sends an evaluation part with the parameters its route needs (not counted: evaluations are not steps).</summary>
    /// <param name="runningStatistics">Under --bn-batch the batch-norm running statistics (a copy: the message owns it); empty otherwise.</param>
    public void SendEvaluation(IActorRef target, int worker, string runId, int requestId, int part, Core.Data.DataSplit split, int[] rows,
        long version, ReadOnlySpan<float> parameters, ReadOnlySpan<float> runningStatistics)
    {
        var snapshot = ParametersFor(worker, target, version, parameters, count: false);
        TensorTransport.Tell(target, new TrainingProtocol.Evaluate(runId, requestId, part, split, rows, snapshot,
            runningStatistics.IsEmpty ? null : runningStatistics.ToArray()), _owner);
    }

    /// <summary>
    /// Parameters at <paramref name="version"/> for a request to <paramref name="worker"/>: for an
    /// in-process or Akka worker a snapshot copied once per version into an array nobody writes
    /// while a worker may read it (TrainingProtocol, <see cref="ParameterSnapshots"/>); for a
    /// data-plane worker an empty snapshot of the version, its values queued on its connection
    /// once per version.
    /// </summary>
    private TrainingProtocol.ParameterSnapshot ParametersFor(int worker, IActorRef target, long version, ReadOnlySpan<float> parameters, bool count)
    {
        if (RouteOf(worker) == TensorRoute.DataPlane)
        {
            if (_dataPlane is null || !_dataPlane.IsConnected(worker))
                _owner.Tell(new DataConnectionLost(worker, -1, "no data connection")); // handled after this round's commands
            else if (_dataPlane.SendParameters(worker, version, parameters) == ParameterSend.Queued && count)
                Count(worker, (long)parameters.Length * BytesPerValue(worker));
            return new TrainingProtocol.ParameterSnapshot(version, ReadOnlyMemory<float>.Empty);
        }
        var snapshot = _snapshots.At(version, parameters);
        if (RouteOf(worker) == TensorRoute.InProcess) _snapshots.Lent(worker);
        if (count) Count(worker, sizeof(float) * (long)snapshot.Values.Length);
        return snapshot;
    }

    /// <summary>Queues the whole model at <paramref name="version"/> on a data-plane worker's connection now (a ring broke around it); counted.</summary>
    public void SendParametersNow(IActorRef target, int worker, long version, ReadOnlySpan<float> parameters) =>
        ParametersFor(worker, target, version, parameters, count: true);

    /// <summary>A worker answered a request made at <paramref name="version"/>: it no longer reads the snapshots up to it.</summary>
    public void Answered(int worker, long version) => _snapshots.Answered(worker, version);

    // ---- results ----

    /// <summary>Takes one part of a chunked Akka transfer from a registered worker; the whole message comes back to the owner as if from the sender.</summary>
    public void Deliver(ITrainingMessage part, IActorRef sender) => _reassembly.Deliver(part, _owner, sender, _log);

    /// <summary>
    /// The message half of a share's result, already checked to belong to the current step and
    /// version. Returns the whole result, or null while its gradient is still on the data plane.
    /// </summary>
    public TrainingProtocol.ShareComputed? OnShareMessage(int worker, TrainingProtocol.ShareComputed result)
    {
        if (RouteOf(worker) != TensorRoute.DataPlane || !result.GradientSum.IsEmpty || _settings.Ring) return result;
        if (_gradientsWithoutMessage.Remove((worker, result.ShareIndex), out var gradient)) return result with { GradientSum = gradient };
        _messagesWithoutGradient[(worker, result.ShareIndex)] = result;
        return null;
    }

    /// <summary>
    /// A gradient from the data plane. Returns the whole result when its message was already here;
    /// otherwise it waits (or, stale or from a connection no longer the worker's, goes back to the pool).
    /// </summary>
    /// <param name="current">Whether the gradient's worker is registered and its step and version are the step in flight.</param>
    public TrainingProtocol.ShareComputed? OnGradient(GradientArrived arrived, bool current)
    {
        if (!current || _dataPlane is null || !_dataPlane.IsCurrent(arrived.WorkerKey, arrived.ConnectionId))
        {
            TensorBuffers.Return(arrived.Values); // nothing waits for it
            return null;
        }
        var key = (arrived.WorkerKey, arrived.Header.Slot);
        if (_messagesWithoutGradient.Remove(key, out var message)) return message with { GradientSum = arrived.Values };
        if (_gradientsWithoutMessage.Remove(key, out var earlier)) TensorBuffers.Return(earlier); // a repeated frame: keep the newest
        _gradientsWithoutMessage[key] = arrived.Values;
        return null;
    }

    /// <summary>Counts the gradient of a committed share into the step's bytes.</summary>
    public void CountGradient(int worker, TrainingProtocol.ShareComputed result) =>
        Count(worker, (long)result.GradientSum.Length * BytesPerValue(worker));

    // ---- the ring ----

    /// <summary>A ring worker's listener port, from its WorkerReady.</summary>
    public void RingPortOf(int worker, int port) => _ringPorts[worker] = port;

    /// <summary>Where the worker's upstream neighbour connects: its node's address and its listener's port (null: it reported none).</summary>
    public (string Host, int Port)? RingEndpoint(int worker, IActorRef handle) =>
        _ringPorts.TryGetValue(worker, out int port) && port > 0 ? (handle.Path.Address.Host ?? "127.0.0.1", port) : null;

    /// <summary>
    /// A ring frame from a worker's data connection. Returns whether it may be used: the connection
    /// is the worker's live one and <paramref name="current"/> (its step, version and generation are
    /// the reduction in flight); otherwise its buffer goes back to the pool here. Counts its bytes.
    /// </summary>
    public bool OnShard(ShardArrived arrived, bool current)
    {
        if (!current || _dataPlane is null || !_dataPlane.IsCurrent(arrived.WorkerKey, arrived.ConnectionId))
        {
            TensorBuffers.Return(arrived.Values);
            return false;
        }
        Count(arrived.WorkerKey, (long)arrived.Values.Length * BytesPerValueOnTheWire);
        return true;
    }

    /// <summary>Queues an updated chunk of a member's shard on its connection (read before this returns) and counts it.</summary>
    /// <returns>false when the worker has no live connection.</returns>
    public bool SendUpdate(int worker, FrameHeader header, ReadOnlySpan<float> updated)
    {
        if (_dataPlane is null || !_dataPlane.SendUpdate(worker, header, updated)) return false;
        Count(worker, (long)updated.Length * BytesPerValueOnTheWire);
        return true;
    }

    /// <summary>The ring's all-gather carries <paramref name="version"/> to the worker: requests at it send no parameters.</summary>
    public void MarkCarried(int worker, long version) => _dataPlane?.MarkCarried(worker, version);

    /// <summary>What the worker holds is uncertain (its ring broke around it): its next request sends the whole model.</summary>
    public void ForgetCarried(int worker) => _dataPlane?.ForgetCarried(worker);

    /// <summary>A whole result is no longer read (committed, refused or dropped): its gradient buffer goes back to the pool.</summary>
    public static void Release(TrainingProtocol.ShareComputed result) => TensorBuffers.Return(result.GradientSum);

    /// <summary>The step is over: late halves of re-planned shares are dropped, their buffers pooled.</summary>
    public void EndStep() => ForgetHalves(null);

    /// <summary>Drops half-arrived results of one worker, or all of them (null); their buffers go back to the pool.</summary>
    private void ForgetHalves(int? worker)
    {
        foreach (var (key, gradient) in _gradientsWithoutMessage)
            if (worker is null || key.Worker == worker)
            {
                TensorBuffers.Return(gradient);
                _gradientsWithoutMessage.Remove(key); // removing while enumerating is allowed for Dictionary since .NET Core 3.0
            }
        foreach (var key in _messagesWithoutGradient.Keys)
            if (worker is null || key.Worker == worker) _messagesWithoutGradient.Remove(key);
    }

    public void Dispose()
    {
        _dataPlane?.Dispose();
        ForgetHalves(null);
    }
}
