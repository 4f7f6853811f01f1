using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Models;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// A worker's end of every tensor route: the parameters of a request (in the message, already
/// loaded, or arriving on the data connection or from a ring's all-gather, when the request waits
/// for them), chunked Akka transfers, and the gradient on its way back — or, in a ring run, kept
/// here until the coordinator asks for the step's reduction (<see cref="Reduce"/>), which the
/// <see cref="RingMember"/> carries out. The worker actor keeps what is its own (its coordinator,
/// its replica, computing). Used by that one actor only (not thread-safe); the threads of the data
/// connection and the ring reach it through messages to the actor (<see cref="ParametersArrived"/>,
/// <see cref="Broken"/>, <see cref="RingFailure"/>).
/// </summary>
/// <param name="testingRingHook">FOR TESTS: the ring member's fault hook (<see cref="RingMember"/>).</param>
public sealed class WorkerLinks(IActorRef owner, Security.ClusterTls? tls, ILoggingAdapter log, Action<long, string>? testingRingHook = null) : IDisposable
{
    /// <summary>The data connection <paramref name="ConnectionId"/> broke (posted to the owner by its reader thread).</summary>
    public sealed record Broken(long ConnectionId, string Reason);

    private readonly TensorReassembly _reassembly = new();
    private DataPlaneClient? _dataPlane;
    /// <summary>The coordinator whose data plane <see cref="_dataPlane"/> reaches: results to it go there as message frames (star runs).</summary>
    private IActorRef? _dataPlaneCoordinator;
    private int _parameterCount;
    private string _runId = "";
    /// <summary>The version whose parameters the replica holds (−1: none).</summary>
    private long _loadedVersion = -1;
    /// <summary>The newest parameters from the data plane not yet loaded into the replica (a pooled buffer these links own).</summary>
    private ParametersArrived? _arrived;
    /// <summary>Requests whose parameters are still on their way, in arrival order: the version each needs and how to run it.</summary>
    private readonly List<(long Version, Action Run)> _waiting = [];
    /// <summary>This worker's part in ring reductions (null: a star run).</summary>
    private RingMember? _ring;
    /// <summary>In a ring run, the gradient sums of this worker's shares until their step commits (pooled buffers these links own).</summary>
    private readonly Dictionary<(long Step, int Slot), float[]> _held = [];
    /// <summary>A reduction asked for before all its shares were computed here (planned when its step started): it starts when they are.</summary>
    private TrainingProtocol.ReduceShares? _pendingReduction;

    /// <summary>A run's replica was (re)built: every tensor has the model's size, and no version is loaded yet.</summary>
    public void StartRun(string runId, int parameterCount)
    {
        _runId = runId;
        _parameterCount = parameterCount;
        _reassembly.ExpectedLength = parameterCount; // parameters: exactly the model's size
        _loadedVersion = -1;
    }

    /// <summary>
    /// Opens the offered data connection (or closes the current one when there is no offer). In a star run the
    /// coordinator's requests arrive on it too (message frames): they reach the owner as if from <paramref name="coordinator"/>,
    /// the one whose data plane authenticated this connection.
    /// </summary>
    /// <returns>false when the offered data plane cannot be reached (the caller registers again).</returns>
    public bool Connect(DataPlaneOffer? offer, IActorRef coordinator)
    {
        if (offer is null)
        {
            Close();
            return true;
        }
        if (_dataPlane is { } open && open.Offer.Host == offer.Host && open.Offer.Port == offer.Port && open.Offer.Token.AsSpan().SequenceEqual(offer.Token))
            return true; // accepted again (e.g. a repeated registration): the connection stands
        Close();
        var self = owner;
        var run = new DataPlaneRun(FrameHeader.TagOf(_runId), _parameterCount, offer.Precision);
        long id = 0;
        try
        {
            var client = DataPlaneClient.Connect(offer, run, arrived => self.Tell(arrived), reason => self.Tell(new Broken(id, reason)), tls,
                offer.Ring ? null : message => self.Tell(message, coordinator));
            id = client.Id;
            _dataPlane = client;
            _dataPlaneCoordinator = coordinator;
            _loadedVersion = -1; // the coordinator sends every version again on a new connection
            return true;
        }
        catch (IOException e)
        {
            log.Warning("{0}; registering again", e.Message);
            return false;
        }
    }

    /// <summary>Closes the data connection; parameters on their way, the requests waiting for them, a ring reduction and the shares held for it are dropped.</summary>
    public void Close()
    {
        _ring?.Abort("the data connection closed");
        _dataPlane?.Dispose();
        _dataPlane = null;
        if (_arrived is not null) TensorBuffers.Return(_arrived.Values);
        _arrived = null;
        _waiting.Clear();
        ReleaseHeld(before: long.MaxValue);
        _pendingReduction = null;
    }

    // ---- the ring ----

    /// <summary>Whether this worker reduces by ring (its results stay here until <see cref="Reduce"/>).</summary>
    public bool InRing => _ring is not null && _dataPlane is not null;

    /// <summary>
    /// Joins a ring run: opens the listener the upstream neighbour will connect to (once; it stays
    /// across reconnections) and routes the coordinator's updated chunks to the ring member.
    /// </summary>
    /// <param name="host">This node's address, where the listener binds and the neighbour connects.</param>
    /// <returns>The listener's port, for WorkerReady.</returns>
    public int JoinRing(string host)
    {
        var self = owner;
        _ring ??= new RingMember(host, new DataPlaneRun(FrameHeader.TagOf(_runId), _parameterCount, _dataPlane!.Offer.Precision), tls,
            arrived => self.Tell(arrived), failure => self.Tell(failure), testingRingHook);
        _dataPlane!.OnUpdate = _ring.OnUpdate;
        return _ring.Port;
    }

    /// <summary>
    /// The coordinator asks for step <c>Step</c>'s reduction: this worker's shares of it, summed in
    /// the order given, go into a fresh buffer that the ring member owns from here on. A reduction
    /// planned when its step started may come before its shares are computed here: it waits for them
    /// (the last one's result starts it), unless a newer reduction or step replaces it.
    /// </summary>
    /// <returns>Why it cannot take part (no data connection), or null.</returns>
    public string? Reduce(TrainingProtocol.ReduceShares request)
    {
        if (_ring is null || _dataPlane is null) return "this worker has no data connection to reduce over";
        ReleaseHeld(before: request.Step);
        _pendingReduction = null;
        foreach (int slot in request.Slots)
            if (!_held.ContainsKey((request.Step, slot)))
            {
                _pendingReduction = request;
                return null;
            }
        StartReduction(request);
        return null;
    }

    private void StartReduction(TrainingProtocol.ReduceShares request)
    {
        var sum = TensorBuffers.Rent(_parameterCount);
        _held[(request.Step, request.Slots[0])].CopyTo(sum, 0);
        for (int i = 1; i < request.Slots.Length; i++) Core.Numerics.FlatMath.AddInPlace(sum, _held[(request.Step, request.Slots[i])]);
        _ring!.Start(new RingMember.Reduction(request.Step, request.Version, request.Generation, request.Epoch, request.Index, request.Members,
            request.ChunkValues, request.Downstream, request.UpstreamToken, sum, _dataPlane!));
    }

    /// <summary>
    /// The coordinator did not apply step <c>Step</c> (non-finite): the reduction ends, and the
    /// parameters held or arrived at the version before are those of <c>Version</c>.
    /// </summary>
    /// <returns>The requests that can run now.</returns>
    public IReadOnlyList<Action> Skipped(TrainingProtocol.StepSkipped skipped)
    {
        _ring?.Skip(skipped.Step);
        if (_loadedVersion == skipped.Version - 1) _loadedVersion = skipped.Version;
        if (_arrived is { } arrived && arrived.Version == skipped.Version - 1) _arrived = arrived with { Version = skipped.Version };
        if (_waiting.Count == 0 || !(_loadedVersion == skipped.Version || _arrived?.Version == skipped.Version)) return [];
        var due = _waiting.FindAll(w => w.Version == skipped.Version);
        _waiting.RemoveAll(w => w.Version <= skipped.Version);
        return due.Select(w => w.Run).ToList();
    }

    /// <summary>Shares of steps before <paramref name="before"/> are committed (or abandoned): their buffers go back to the pool.</summary>
    private void ReleaseHeld(long before)
    {
        foreach (var (key, sum) in _held)
            if (key.Step < before)
            {
                TensorBuffers.Return(sum);
                _held.Remove(key);
            }
    }

    /// <summary>
    /// Lets go of the data connection without closing it: a worker that leaves lets the coordinator
    /// close it (or the process's exit), so the coordinator hears "leaving", not "data connection lost".
    /// </summary>
    public void Detach() => _dataPlane = null;

    /// <summary>Whether a break report concerns the current connection (0: the connection broke while it was being opened).</summary>
    public bool IsCurrent(Broken broken) => _dataPlane is not null && (broken.ConnectionId == 0 || broken.ConnectionId == _dataPlane.Id);

    /// <summary>Takes one part of a chunked Akka transfer from the coordinator; the whole message comes back to the owner as if from the sender.</summary>
    public void Deliver(ITrainingMessage part, IActorRef sender) => _reassembly.Deliver(part, owner, sender, log);

    // ---- parameters ----

    /// <summary>
    /// Parameters that arrived on the data connection. Returns the requests that can run now (at
    /// this version); requests at older versions are dropped as stale (the coordinator moved on).
    /// </summary>
    public IReadOnlyList<Action> OnParametersArrived(ParametersArrived arrived)
    {
        if (_dataPlane?.Id != arrived.ConnectionId)
        {
            TensorBuffers.Return(arrived.Values); // from a connection closed meanwhile
            return [];
        }
        // The whole model from the coordinator while a ring still gathers that version: the coordinator found the ring broken.
        if (!arrived.FromRing && _ring?.Producing is long producing && arrived.Version >= producing) _ring.Abort("the coordinator sent the parameters whole");
        if (_arrived is { } newer && newer.Version > arrived.Version)
        {
            TensorBuffers.Return(arrived.Values); // older than what is here (a ring and the coordinator both delivered)
            return [];
        }
        if (_arrived is not null) TensorBuffers.Return(_arrived.Values);
        _arrived = arrived;
        if (_waiting.Count == 0) return [];
        var due = _waiting.FindAll(w => w.Version <= arrived.Version);
        _waiting.RemoveAll(w => w.Version <= arrived.Version);
        return due.Where(w => w.Version == arrived.Version).Select(w => w.Run).ToList();
    }

    /// <summary>
    /// Whether a request can run now: its parameters are in the message, loaded, or arrived. One at
    /// a version not yet arrived waits (<see cref="Defer"/>); one older than what arrived is stale.
    /// </summary>
    public bool ParametersReady(TrainingProtocol.ParameterSnapshot parameters) =>
        !parameters.Values.IsEmpty || _dataPlane is null || _loadedVersion == parameters.Version || _arrived?.Version == parameters.Version;

    /// <summary>Keeps a request until the parameters of <paramref name="version"/> arrive; a request older than what is here is dropped.</summary>
    public void Defer(long version, Action run)
    {
        if (version > Math.Max(_loadedVersion, _arrived?.Version ?? -1)) _waiting.Add((version, run));
    }

    /// <summary>Loads the request's parameters into <paramref name="replica"/> unless it holds that version already.</summary>
    /// <exception cref="InvalidOperationException">The version has not arrived (a request that did not wait).</exception>
    public void Load(IModelReplica replica, TrainingProtocol.ParameterSnapshot parameters)
    {
        if (_loadedVersion == parameters.Version) return;
        if (!parameters.Values.IsEmpty) replica.LoadParameters(parameters.Values.Span);
        else if (_arrived?.Version == parameters.Version)
        {
            replica.LoadParameters(_arrived.Values);
            TensorBuffers.Return(_arrived.Values);
            _arrived = null;
        }
        else throw new InvalidOperationException($"the parameters of version {parameters.Version} have not arrived");
        _loadedVersion = parameters.Version;
    }

    // ---- results ----

    /// <summary>
    /// Sends a share's result to <paramref name="replyTo"/>: over the data plane the gradient goes
    /// on the data connection first and the message follows with an empty tensor (in a star run on
    /// the same connection, a message frame; in a ring through Akka); otherwise the
    /// message carries it; in a ring run the gradient stays here until the step's reduction. Either
    /// way <paramref name="gradientBuffer"/> (a pooled buffer holding the result's gradient) is no
    /// longer the caller's after the call: the data plane's copy returns it to the pool at once, a
    /// message hands it to the coordinator (TrainingProtocol), the ring keeps it until its step commits.
    /// </summary>
    /// <exception cref="IOException">The data connection broke while sending (it is then closed and reported).</exception>
    public void Reply(IActorRef replyTo, TrainingProtocol.ShareComputed result, float[] gradientBuffer)
    {
        if (InRing)
        {
            // Kept for the step's reduction; only the message goes now.
            ReleaseHeld(before: result.Step);
            if (_pendingReduction?.Step < result.Step) _pendingReduction = null;
            if (_held.Remove((result.Step, result.ShareIndex), out var earlier)) TensorBuffers.Return(earlier);
            _held[(result.Step, result.ShareIndex)] = gradientBuffer;
            TensorTransport.Tell(replyTo, result with { GradientSum = ReadOnlyMemory<float>.Empty }, owner);
            if (_pendingReduction is { } pending && pending.Step == result.Step && pending.Slots.All(slot => _held.ContainsKey((result.Step, slot))))
            {
                _pendingReduction = null;
                StartReduction(pending);
            }
            return;
        }
        if (_dataPlane is { } dataPlane)
        {
            try
            {
                dataPlane.SendGradient(result.Step, result.ParameterVersion, result.ShareIndex, result.GradientSum.Span);
            }
            finally
            {
                TensorBuffers.Return(gradientBuffer);
            }
            result = result with { GradientSum = ReadOnlyMemory<float>.Empty };
            if (!dataPlane.Offer.Ring && replyTo.Equals(_dataPlaneCoordinator))
            {
                dataPlane.SendMessage(result); // right behind its gradient: one reader thread delivers both
                return;
            }
        }
        TensorTransport.Tell(replyTo, result, owner);
    }

    public void Dispose()
    {
        Close();
        _ring?.Dispose();
        _ring = null;
    }
}
