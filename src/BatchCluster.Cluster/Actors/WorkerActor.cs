using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Transport;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Models;

namespace BatchCluster.Cluster.Actors;

/// <summary>How a worker presents itself, and where it gets the run's data (loaded locally, by spec).</summary>
public sealed record WorkerSettings(string Device, int Threads, Func<TrainingProtocol.RunSpec, DataSplits> LoadData);

/// <summary>
/// Registers with the coordinator, then holds the data set and one model replica and computes
/// share gradients and evaluations on request. It runs on a pinned dispatcher (a thread of its
/// own), so its blocking TorchSharp work never occupies the threads the coordinator and Akka run on.
/// Until accepted it re-registers every few seconds (the coordinator may not be up yet, or may
/// have moved); if the coordinator it registered with dies, it registers again.
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
    // Reused for every share: the coordinator reads a share's gradient only until that step
    // commits, which is before it sends this worker any further work (see TrainingProtocol).
    private float[] _gradientSum = [];

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
        Receive<TensorTransferStart>(start => _reassembly.Begin(Sender.Path.ToString(), start));
        Receive<TensorChunk>(chunk =>
        {
            if (_reassembly.Add(Sender.Path.ToString(), chunk) is { } complete) Self.Tell(complete, Sender);
        });
        Receive<Terminated>(t => t.ActorRef.Equals(_coordinator), _ =>
        {
            _log.Warning("Coordinator {0} is gone; registering again", _coordinator);
            _coordinator = null;
            StartRegistering();
        });
    }

    private sealed class Register
    {
        public static readonly Register Instance = new();
    }

    protected override void PreStart()
    {
        var address = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress;
        _workerId = Self.Path.ToStringWithAddress(address);
        StartRegistering();
    }

    protected override void PostStop() => _replica?.Dispose();

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
            _gradientSum = new float[_replica.ParameterCount];
            _loadedVersion = -1;
            _runId = accepted.RunId;
        }
        Sender.Tell(new TrainingProtocol.WorkerReady(_workerId, MeasureSamplesPerSecond()));
    }

    /// <summary>Forward/backward throughput on a few training samples, reported to the coordinator.</summary>
    private double MeasureSamplesPerSecond()
    {
        var ids = Enumerable.Range(0, Math.Min(64, _data!.Train.Count)).ToArray();
        _replica!.ComputeGradientSum(_data.Train, ids, ids.Length, _gradientSum); // warm-up
        var clock = Stopwatch.StartNew();
        const int repeats = 3;
        for (int i = 0; i < repeats; i++) _replica.ComputeGradientSum(_data.Train, ids, ids.Length, _gradientSum);
        return repeats * ids.Length / clock.Elapsed.TotalSeconds;
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
        var replica = ReplicaAt(work.Parameters);
        var gradient = replica.ComputeGradientSum(_data!.Train, work.SampleIds, work.MicroBatch, _gradientSum);
        TensorTransport.Tell(Sender, new TrainingProtocol.ShareComputed(
            work.RunId, work.Step, work.Parameters.Version, work.ShareIndex, gradient.SampleCount, gradient.LossSum,
            gradient.GradientSum, gradient.GradientSumSquaredNorm, gradient.ComputeMilliseconds,
            Stopwatch.GetElapsedTime(handlingStarted).TotalMilliseconds, PeakMemory.Bytes), Self);
    }

    private void OnEvaluate(TrainingProtocol.Evaluate request)
    {
        var result = ReplicaAt(request.Parameters).Evaluate(_data!.Of(request.Split), request.Start, request.Count);
        Sender.Tell(new TrainingProtocol.EvaluationDone(
            request.RunId, request.RequestId, request.Part, request.Parameters.Version, result.LossSum, result.Correct, result.Count));
    }
}
