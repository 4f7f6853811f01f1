using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Transport;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;

namespace BatchCluster.Cluster.Actors;

/// <summary>How a worker presents itself, and where it gets the run's data (loaded locally, by spec).</summary>
/// <param name="RegisterAgainWhenCoordinatorStops">On a worker node: when the coordinator it knew stops (the singleton moved,
/// or was rebuilt after a failure), register again. In the local cluster a stopped coordinator means the run is over: stop quietly.</param>
public sealed record WorkerSettings(string Device, int Threads, Func<TrainingProtocol.RunSpec, DataSplits> LoadData,
    bool RegisterAgainWhenCoordinatorStops = true);

/// <summary>
/// Registers with the coordinator, then holds the data set and one model replica and computes
/// share gradients and evaluations on request. It runs on a pinned dispatcher (a thread of its
/// own), so its blocking TorchSharp work never occupies the threads the coordinator and Akka run on.
/// Until accepted it re-registers every few seconds (the coordinator may not be up yet, or may
/// have moved); if the coordinator it registered with dies, it registers again. A coordinator
/// may accept it again at any time (e.g. when its node is reachable again): it then only reports
/// ready. A share or evaluation that throws is answered with <see cref="TrainingProtocol.ShareFailed"/>
/// or <see cref="TrainingProtocol.EvaluationFailed"/>, so the coordinator re-plans it at once.
/// </summary>
public sealed class WorkerActor : ReceiveActor, IWithTimers
{
    public const string DispatcherId = "batchcluster.worker-dispatcher";
    private static readonly TimeSpan RegisterInterval = TimeSpan.FromSeconds(2);

    private readonly IActorRef _coordinatorEntry;
    private readonly WorkerSettings _settings;
    private readonly TaskCompletionSource<bool>? _runEnded;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TensorReassembly _reassembly = new();
    private string _workerId = "";
    private string _runId = "";
    private IActorRef? _coordinator;
    private DataSplits? _data;
    private ModelReplica? _replica;
    private long _loadedVersion = -1;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="coordinator">The coordinator, or the cluster singleton proxy in front of it.</param>
    /// <param name="runEnded">Completed with the run's outcome when the coordinator says the run is over.</param>
    public static Props Props(IActorRef coordinator, WorkerSettings settings, TaskCompletionSource<bool>? runEnded = null) =>
        Akka.Actor.Props.Create(() => new WorkerActor(coordinator, settings, runEnded)).WithDispatcher(DispatcherId);

    public WorkerActor(IActorRef coordinator, WorkerSettings settings, TaskCompletionSource<bool>? runEnded)
    {
        _coordinatorEntry = coordinator;
        _settings = settings;
        _runEnded = runEnded;
        Receive<Register>(_ => SendRegistration());
        Receive<TrainingProtocol.WorkerAccepted>(OnAccepted);
        Receive<TrainingProtocol.WorkerRejected>(OnRejected);
        Receive<TrainingProtocol.RunEnded>(OnRunEnded);
        Receive<TrainingProtocol.ComputeShare>(OnComputeShare);
        Receive<TrainingProtocol.Evaluate>(OnEvaluate);
        Receive<Leave>(_ => OnLeave());
        Receive<TensorTransferStart>(start => _reassembly.Deliver(start, Self, Sender, _log));
        Receive<TensorChunk>(chunk => _reassembly.Deliver(chunk, Self, Sender, _log));
        Receive<Terminated>(t => t.ActorRef.Equals(_coordinator), _ =>
        {
            _coordinator = null;
            if (!_settings.RegisterAgainWhenCoordinatorStops)
            {
                _runEnded?.TrySetResult(false);
                Context.Stop(Self);
                return;
            }
            _log.Warning("Coordinator {0} is gone; registering again", Sender);
            StartRegistering();
        });
    }

    private sealed class Register
    {
        public static readonly Register Instance = new();
    }

    /// <summary>Sent by the node on SIGTERM/SIGINT: tell the coordinator, then stop.</summary>
    public sealed class Leave
    {
        public static readonly Leave Instance = new();
    }

    protected override void PreStart()
    {
        var address = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress;
        _workerId = Self.Path.ToStringWithAddress(address);
        StartRegistering();
    }

    protected override void PostStop()
    {
        _replica?.Dispose();
        // Stopped without RunEnded (a crash, which the stopping supervision turns into a stop): the
        // node must not wait for a run this worker no longer serves.
        _runEnded?.TrySetException(new InvalidOperationException("the worker stopped before the run ended; see the log above"));
    }

    private void StartRegistering()
    {
        SendRegistration();
        Timers.StartPeriodicTimer("register", Register.Instance, RegisterInterval);
    }

    private void SendRegistration()
    {
        var address = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress;
        _coordinatorEntry.Tell(new TrainingProtocol.RegisterWorker(_workerId, address.ToString(), _settings.Device, _settings.Threads, TrainingProtocol.Version));
    }

    private void OnAccepted(TrainingProtocol.WorkerAccepted accepted)
    {
        Timers.Cancel("register");
        if (_coordinator is not null) Context.Unwatch(_coordinator);
        _coordinator = Sender;
        Context.Watch(_coordinator);
        if (_replica is null || accepted.RunId != _runId)
        {
            // Created here, on this actor's own pinned thread: TorchSharp scopes are thread-static.
            _replica?.Dispose();
            _data = _settings.LoadData(accepted.Spec);
            var model = accepted.Spec.Model == "mlp" ? ModelSpec.Mlp(accepted.Spec.HiddenSizes) : ModelSpec.Cnn(accepted.Spec.Model == "cnn-bn");
            _replica = new ModelReplica(model);
            _loadedVersion = -1;
            _runId = accepted.RunId;
        }
        Sender.Tell(new TrainingProtocol.WorkerReady(_workerId, MeasureSamplesPerSecond()));
    }

    /// <summary>Forward/backward throughput on a few training samples, reported to the coordinator.</summary>
    private double MeasureSamplesPerSecond()
    {
        var ids = Enumerable.Range(0, Math.Min(64, _data!.Train.Count)).ToArray();
        var scratch = new float[_replica!.ParameterCount]; // never sent
        _replica.ComputeGradientSum(_data.Train, ids, ids.Length, scratch); // warm-up
        var clock = Stopwatch.StartNew();
        const int repeats = 3;
        for (int i = 0; i < repeats; i++) _replica.ComputeGradientSum(_data.Train, ids, ids.Length, scratch);
        return repeats * ids.Length / clock.Elapsed.TotalSeconds;
    }

    private void OnLeave()
    {
        _coordinator?.Tell(new TrainingProtocol.WorkerLeaving(_workerId));
        _runEnded?.TrySetResult(true);
        Context.Stop(Self);
    }

    private void OnRejected(TrainingProtocol.WorkerRejected rejected)
    {
        _log.Error("The coordinator refused this worker: {0}", rejected.Reason);
        _runEnded?.TrySetException(new InvalidOperationException($"the coordinator refused this worker: {rejected.Reason}"));
        Context.Stop(Self);
    }

    private void OnRunEnded(TrainingProtocol.RunEnded ended)
    {
        _runEnded?.TrySetResult(ended.Succeeded);
        Context.Stop(Self);
    }

    private ModelReplica ReplicaAt(TrainingProtocol.ParameterSnapshot parameters)
    {
        var replica = _replica ?? throw new InvalidOperationException("work arrived before the worker was accepted");
        if (_loadedVersion != parameters.Version)
        {
            replica.LoadParameters(parameters.Values.Span);
            _loadedVersion = parameters.Version;
        }
        return replica;
    }

    private void OnComputeShare(TrainingProtocol.ComputeShare work)
    {
        long handlingStarted = Stopwatch.GetTimestamp();
        // A fresh (pooled) buffer per share, owned by the coordinator once sent: see TrainingProtocol.
        var gradientSum = TensorBuffers.Rent(_replica?.ParameterCount ?? 0);
        ShareGradient gradient;
        try
        {
            var replica = ReplicaAt(work.Parameters);
            gradient = replica.ComputeGradientSum(_data!.Train, work.SampleIds, work.MicroBatch, gradientSum);
        }
        catch (Exception e)
        {
            TensorBuffers.Return(gradientSum);
            _log.Error(e, "Share {0} of step {1} failed", work.ShareIndex, work.Step);
            Sender.Tell(new TrainingProtocol.ShareFailed(work.RunId, work.Step, work.ShareIndex, e.Message));
            return;
        }
        TensorTransport.Tell(Sender, new TrainingProtocol.ShareComputed(
            work.RunId, work.Step, work.Parameters.Version, work.ShareIndex, gradient.SampleCount, gradient.LossSum,
            gradient.GradientSum, gradient.GradientSumSquaredNorm, gradient.ComputeMilliseconds,
            Stopwatch.GetElapsedTime(handlingStarted).TotalMilliseconds, PeakMemory.Bytes), Self);
    }

    private void OnEvaluate(TrainingProtocol.Evaluate request)
    {
        EvaluationResult result;
        try
        {
            result = ReplicaAt(request.Parameters).Evaluate(_data!.Of(request.Split), request.Rows);
        }
        catch (Exception e)
        {
            _log.Error(e, "Evaluation part {0} of request {1} failed", request.Part, request.RequestId);
            Sender.Tell(new TrainingProtocol.EvaluationFailed(request.RunId, request.RequestId, request.Part, e.Message));
            return;
        }
        Sender.Tell(new TrainingProtocol.EvaluationDone(
            request.RunId, request.RequestId, request.Part, request.Parameters.Version, result.LossSum, result.Correct, result.Count));
    }
}
