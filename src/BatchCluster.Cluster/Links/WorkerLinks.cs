using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Models;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// A worker's end of every tensor route: the parameters of a request (in the message, already
/// loaded, or arriving on the data connection, when the request waits for them), chunked Akka
/// transfers, and the gradient on its way back. The worker actor keeps what is its own (its
/// coordinator, its replica, computing). Used by that one actor only (not thread-safe); the data
/// connection's reader thread reaches it through <see cref="ParametersArrived"/> and <see cref="Broken"/>
/// messages to the actor.
/// </summary>
public sealed class WorkerLinks(IActorRef owner, Security.ClusterTls? tls, ILoggingAdapter log) : IDisposable
{
    /// <summary>The data connection <paramref name="ConnectionId"/> broke (posted to the owner by its reader thread).</summary>
    public sealed record Broken(long ConnectionId, string Reason);

    private readonly TensorReassembly _reassembly = new();
    private DataPlaneClient? _dataPlane;
    private int _parameterCount;
    private string _runId = "";
    /// <summary>The version whose parameters the replica holds (−1: none).</summary>
    private long _loadedVersion = -1;
    /// <summary>The newest parameters from the data plane not yet loaded into the replica (a pooled buffer these links own).</summary>
    private ParametersArrived? _arrived;
    /// <summary>Requests whose parameters are still on their way, in arrival order: the version each needs and how to run it.</summary>
    private readonly List<(long Version, Action Run)> _waiting = [];

    /// <summary>A run's replica was (re)built: every tensor has the model's size, and no version is loaded yet.</summary>
    public void StartRun(string runId, int parameterCount)
    {
        _runId = runId;
        _parameterCount = parameterCount;
        _reassembly.ExpectedLength = parameterCount; // parameters: exactly the model's size
        _loadedVersion = -1;
    }

    /// <summary>Opens the offered data connection (or closes the current one when there is no offer).</summary>
    /// <returns>false when the offered data plane cannot be reached (the caller registers again).</returns>
    public bool Connect(DataPlaneOffer? offer)
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
            var client = DataPlaneClient.Connect(offer, run, arrived => self.Tell(arrived), reason => self.Tell(new Broken(id, reason)), tls);
            id = client.Id;
            _dataPlane = client;
            _loadedVersion = -1; // the coordinator sends every version again on a new connection
            return true;
        }
        catch (IOException e)
        {
            log.Warning("{0}; registering again", e.Message);
            return false;
        }
    }

    /// <summary>Closes the data connection; parameters on their way and the requests waiting for them are dropped.</summary>
    public void Close()
    {
        _dataPlane?.Dispose();
        _dataPlane = null;
        if (_arrived is not null) TensorBuffers.Return(_arrived.Values);
        _arrived = null;
        _waiting.Clear();
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
    /// on the data connection first and the message follows with an empty tensor; otherwise the
    /// message carries it. Either way <paramref name="gradientBuffer"/> (a pooled buffer holding
    /// the result's gradient) is no longer this worker's after the call: the data plane's copy
    /// returns it to the pool at once, a message hands it to the coordinator (TrainingProtocol).
    /// </summary>
    /// <exception cref="IOException">The data connection broke while sending (it is then closed and reported).</exception>
    public void Reply(IActorRef replyTo, TrainingProtocol.ShareComputed result, float[] gradientBuffer)
    {
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
        }
        TensorTransport.Tell(replyTo, result, owner);
    }

    public void Dispose() => Close();
}
