using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Numerics;

namespace BatchCluster.Cluster.Actors;

/// <summary>How a worker presents itself, and where it gets the run's data (loaded locally, by spec).</summary>
/// <param name="RegisterAgainWhenCoordinatorStops">On a worker node: when the coordinator it knew stops (the singleton moved,
/// or was rebuilt after a failure), register again. In the local cluster a stopped coordinator means the run is over: stop quietly.</param>
/// <param name="TestingSlowdown">For tests and benchmarks only: after computing a share, wait (factor − 1) × its compute time,
/// so the worker runs at 1/factor of its speed (1 = full speed).</param>
/// <param name="Tls">The node's TLS identity: its data connection is then TLS as well (docs/security.md).</param>
/// <param name="CreateReplica">The compute backend: makes the replica of a run's model (on the worker's own thread).
/// Null: TorchSharp on the CPU (<see cref="ModelReplica"/>).</param>
/// <param name="TestingRingHook">For tests only: called by the ring member at given points of a reduction (see <see cref="RingMember"/>).</param>
/// <param name="TestingMisbehaviour">For tests and the chaos run only: this worker behaves as a broken or hostile member would.</param>
public sealed record WorkerSettings(string Device, int Threads, Func<TrainingProtocol.RunSpec, DataSplits> LoadData,
    bool RegisterAgainWhenCoordinatorStops = true, double TestingSlowdown = 1, Security.ClusterTls? Tls = null,
    Func<ModelSpec, IModelReplica>? CreateReplica = null, Action<long, string>? TestingRingHook = null,
    Misbehaviour TestingMisbehaviour = Misbehaviour.None);

/// <summary>How a bad member misbehaves (docs/robustness.md): what the coordinator must survive.</summary>
public enum Misbehaviour
{
    None,
    /// <summary>Answers every share with NaN gradients (a broken device or a poisoned replica).</summary>
    NanGradients,
    /// <summary>Registers, then never answers a share or an evaluation.</summary>
    Silent,
    /// <summary>Claims 10⁹ samples/s at registration and a compute time to match with every share.</summary>
    SpeedLie,
    /// <summary>Answers every evaluation with "all correct".</summary>
    FakeEvaluation,
    /// <summary>Sends finite gradients a million times too large (and the squared norm that goes with them).</summary>
    HugeGradients,
    /// <summary>
    /// From its first share on, sends the coordinator a message larger than any node's frame limit four times a second
    /// (its own limit raised to send them) and answers no share: the coordinator's node drops the connection on each one.
    /// </summary>
    OversizedFrames,
    /// <summary>Sends honest gradients but reports four times their squared norm (which steers the noise scale).</summary>
    NormLie,
    /// <summary>Where asked for a share's halves, reports a hundred times the first half's squared norm (which would steer the noise scale of a one-worker run).</summary>
    HalfNormLie,
}

/// <summary>
/// Registers with the coordinator, then holds the data set and one model replica and computes
/// share gradients and evaluations on request. It runs on a pinned dispatcher (a thread of its
/// own; in a local cluster with more CPU workers than cores, one of a pool of one thread per core:
/// <see cref="Local.LocalCluster.AkkaConfigFor"/>), so its blocking TorchSharp work never occupies
/// the threads the coordinator and Akka run on.
/// Until accepted it re-registers every few seconds (the coordinator may not be up yet, or may
/// have moved); if the coordinator it registered with dies, it registers again. A coordinator
/// may accept it again at any time (e.g. when its node is reachable again): it then only reports
/// ready. A share or evaluation that throws is answered with <see cref="TrainingProtocol.ShareFailed"/>
/// or <see cref="TrainingProtocol.EvaluationFailed"/>, so the coordinator re-plans it at once.
/// <para>In another process than the coordinator it opens a data connection when accepted (the
/// offer in WorkerAccepted): parameters arrive there, gradient sums leave there, and a request
/// whose parameters have not arrived yet waits for them. A broken data connection makes it
/// register again (the coordinator has lost it as a worker by then).</para>
/// </summary>
public sealed class WorkerActor : ReceiveActor, IWithTimers
{
    public const string DispatcherId = "batchcluster.worker-dispatcher";

    /// <summary>What <see cref="Misbehaviour.OversizedFrames"/> sends: above every node's 4 MiB frame limit (cluster.hocon).</summary>
    public const int OversizedFrameBytes = 6 << 20;
    private static readonly TimeSpan RegisterInterval = TimeSpan.FromSeconds(2);

    private readonly IActorRef _coordinatorEntry;
    private readonly WorkerSettings _settings;
    private readonly TaskCompletionSource<bool>? _runEnded;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerLinks _links;
    /// <summary>The oversized-frames misbehaviour's repeating send (tests only).</summary>
    private ICancelable? _oversizedFlood;
    /// <summary>Messages from strangers, counted and logged at most once a minute per sender (a flood costs neither memory nor disk).</summary>
    private readonly Core.Coordination.IgnoredMessages _ignored = new();
    private readonly long _startedAt = Stopwatch.GetTimestamp();
    private string _workerId = "";
    private string _runId = "";
    /// <summary>The coordinator this worker serves now (null while registering).</summary>
    private IActorRef? _coordinator;
    /// <summary>The last coordinator that accepted this worker, kept after it stopped: the end of the run may come in its name (its supervisor ends a run whose coordinator failed).</summary>
    private IActorRef? _acceptedBy;
    private DataSplits? _data;
    private IModelReplica? _replica;
    /// <summary>This process's managed allocation per reply, for a coordinator in another process (one in this process counts its own).</summary>
    private readonly AllocationMeter _allocation = new();

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
        _links = new WorkerLinks(Self, settings.Tls, _log, settings.TestingRingHook);
        Receive<Register>(_ => SendRegistration());
        Receive<Leave>(_ => OnLeave());
        Receive<ParametersArrived>(OnParametersArrived);
        Receive<WorkerLinks.Broken>(OnDataPlaneBroken);
        // Who may say what (docs/security.md): acceptance from the coordinator singleton's current host, refusal
        // from the exact coordinator this worker serves (or, while it serves none, from that host), work from the
        // exact coordinator it serves, the end of the run from the exact coordinator that last accepted it; the rest
        // is dropped.
        Receive<TrainingProtocol.WorkerAccepted>(_ => MayCoordinate(Sender), OnAccepted);
        Receive<TrainingProtocol.WorkerRejected>(_ => _coordinator is null ? MayCoordinate(Sender) : IsFromMyCoordinator(Sender), OnRejected);
        Receive<TrainingProtocol.RunEnded>(_ => CoordinatorIdentity.IsExactly(Sender, _acceptedBy), OnRunEnded);
        Receive<TrainingProtocol.ComputeShare>(_ => IsFromMyCoordinator(Sender), OnComputeShare);
        Receive<TrainingProtocol.Evaluate>(_ => IsFromMyCoordinator(Sender), OnEvaluate);
        Receive<TrainingProtocol.ReduceShares>(_ => IsFromMyCoordinator(Sender), OnReduceShares);
        Receive<TrainingProtocol.StepSkipped>(_ => IsFromMyCoordinator(Sender), skipped =>
        {
            foreach (var run in _links.Skipped(skipped)) run();
        });
        Receive<RingFailure>(failure =>
        {
            _log.Warning("Ring reduction of step {0} (generation {1}) failed here: {2}", failure.Step, failure.Generation, failure.Reason);
            _coordinator?.Tell(new TrainingProtocol.ReductionFailed(_runId, failure.Step, failure.Generation, failure.Reason, failure.UpstreamSuspected));
        });
        Receive<TensorTransferStart>(_ => IsFromMyCoordinator(Sender), start => _links.Deliver(start, Sender));
        Receive<TensorChunk>(_ => IsFromMyCoordinator(Sender), chunk => _links.Deliver(chunk, Sender));
        Receive<ITrainingMessage>(message =>
        {
            if (_ignored.Ignore(Sender.Path.Address.ToString(), Stopwatch.GetElapsedTime(_startedAt).TotalMilliseconds, out long more, out string who))
                _log.Warning("Ignored {0} from {1}: not from the coordinator of this worker{2}", message.GetType().Name, who,
                    more > 0 ? $" ({more} more ignored from there since the last such line)" : "");
        });
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

    /// <summary>
    /// Whether <paramref name="sender"/> may accept or refuse this worker: an actor of this process (the local
    /// cluster, or a coordinator sharing the node), or the coordinator singleton on the member that hosts it now.
    /// </summary>
    private bool MayCoordinate(IActorRef sender) =>
        sender.Path.Address.HasLocalScope || CoordinatorIdentity.IsOnSingletonHost(sender, Akka.Cluster.Cluster.Get(Context.System));

    /// <summary>Whether <paramref name="sender"/> is the coordinator this worker serves: the same actor, path and UID.</summary>
    private bool IsFromMyCoordinator(IActorRef sender) => CoordinatorIdentity.IsExactly(sender, _coordinator);

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
        _oversizedFlood?.Cancel();
        _links.Dispose();
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
        _acceptedBy = Sender;
        Context.Watch(_coordinator);
        if (_replica is null || accepted.RunId != _runId)
        {
            // Created here, on this actor's own pinned thread: TorchSharp scopes are thread-static.
            _replica?.Dispose();
            _replica = null;
            _data = _settings.LoadData(accepted.Spec);
            var model = accepted.Spec.Model == "mlp" ? ModelSpec.Mlp(accepted.Spec.HiddenSizes) : ModelSpec.Cnn(accepted.Spec.Model == "cnn-bn");
            try
            {
                _replica = _settings.CreateReplica?.Invoke(model) ?? new ModelReplica(model);
                if (accepted.Spec.BnBatch > 0) _replica.UseGhostBatches(accepted.Spec.BnBatch);
                _ghostBatch = Math.Max(1, accepted.Spec.BnBatch);
            }
            catch (Exception cannot)
            {
                // This worker's device cannot hold the run's model (the ILGPU backend runs the MLP only; a device that fails to
                // open or to allocate): a decision, not a crash to restart into the same failure.
                _log.Error("This worker cannot take part in run {0}: {1}", accepted.RunId, cannot.Message);
                _runEnded?.TrySetException(new InvalidOperationException($"this worker cannot run the model: {cannot.Message}"));
                Context.Stop(Self);
                return;
            }
            _runId = accepted.RunId;
            _links.StartRun(_runId, _replica.ParameterCount);
        }
        if (!_links.Connect(accepted.DataPlane, Sender))
        {
            StartRegistering();
            return;
        }
        // In a ring run the neighbour connects to this node's own address, where the listener binds.
        int ringPort = accepted.DataPlane?.Ring == true
            ? _links.JoinRing(((ExtendedActorSystem)Context.System).Provider.DefaultAddress.Host ?? "127.0.0.1")
            : 0;
        Sender.Tell(new TrainingProtocol.WorkerReady(_workerId, MeasureSamplesPerSecond(), ringPort));
    }

    private void OnParametersArrived(ParametersArrived arrived)
    {
        foreach (var run in _links.OnParametersArrived(arrived)) run();
    }

    private void OnDataPlaneBroken(WorkerLinks.Broken broken)
    {
        if (!_links.IsCurrent(broken)) return;
        _log.Warning("The data connection to the coordinator broke ({0}); registering again", broken.Reason);
        _links.Close();
        StartRegistering();
    }

    /// <summary>Forward/backward throughput on a few training samples, reported to the coordinator.</summary>
    private const double LiedSamplesPerSecond = 1e9;

    /// <summary>The run's ghost batch (--bn-batch): the measurement's share is made of whole ones; 1 otherwise.</summary>
    private int _ghostBatch = 1;

    private double MeasureSamplesPerSecond()
    {
        if (_settings.TestingMisbehaviour == Misbehaviour.SpeedLie) return LiedSamplesPerSecond;
        var ids = Enumerable.Range(0, Math.Max(_ghostBatch, Math.Min(64, _data!.Train.Count) / _ghostBatch * _ghostBatch)).ToArray();
        var scratch = new float[_replica!.ParameterCount]; // never sent
        _replica.ComputeGradientSum(_data.Train, ids, ids.Length, scratch); // warm-up
        var clock = Stopwatch.StartNew();
        const int repeats = 3;
        for (int i = 0; i < repeats; i++) _replica.ComputeGradientSum(_data.Train, ids, ids.Length, scratch);
        return repeats * ids.Length / clock.Elapsed.TotalSeconds / Math.Max(1, _settings.TestingSlowdown);
    }

    private void OnLeave()
    {
        _coordinator?.Tell(new TrainingProtocol.WorkerLeaving(_workerId));
        // The data connection stays open (the coordinator closes it when it hears why this worker
        // left, or the process's exit does): closed here, it would tell the coordinator first, and
        // the reason would read "data connection lost" instead of "leaving".
        _links.Detach();
        _runEnded?.TrySetResult(true);
        Context.Stop(Self);
    }

    private void OnReduceShares(TrainingProtocol.ReduceShares request)
    {
        if (_links.Reduce(request) is { } cannot)
        {
            _log.Warning("Cannot take part in the reduction of step {0}: {1}", request.Step, cannot);
            Sender.Tell(new TrainingProtocol.ReductionFailed(request.RunId, request.Step, request.Generation, cannot, UpstreamSuspected: false));
        }
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

    /// <summary>Keeps a request until its parameters arrive (the closure is made only here, off the common path).</summary>
    private void Defer(TrainingProtocol.ComputeShare work, IActorRef replyTo) => _links.Defer(work.Parameters.Version, () => Compute(work, replyTo));

    private void Defer(TrainingProtocol.Evaluate request, IActorRef replyTo) => _links.Defer(request.Parameters.Version, () => Evaluate(request, replyTo));

    private IModelReplica ReplicaAt(TrainingProtocol.ParameterSnapshot parameters)
    {
        var replica = _replica ?? throw new InvalidOperationException("work arrived before the worker was accepted");
        _links.Load(replica, parameters);
        return replica;
    }

    private void OnComputeShare(TrainingProtocol.ComputeShare work)
    {
        if (_settings.TestingMisbehaviour == Misbehaviour.Silent) return;
        if (_settings.TestingMisbehaviour == Misbehaviour.OversizedFrames)
        {
            // From the first share on, four times a second: the link to the coordinator is kept broken, not broken once.
            if (_oversizedFlood is null)
            {
                var oversized = new TrainingProtocol.ShareFailed(work.RunId, work.Step, work.ShareIndex, new string('x', OversizedFrameBytes));
                _oversizedFlood = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.Zero, TimeSpan.FromMilliseconds(250), Sender, oversized, Self);
            }
            return;
        }
        if (work.ThenReduce is { } plan) OnReduceShares(plan); // waits here until this worker's shares of the step are computed
        if (_links.ParametersReady(work.Parameters)) Compute(work, Sender);
        else Defer(work, Sender);
    }

    private void Compute(TrainingProtocol.ComputeShare work, IActorRef replyTo)
    {
        long handlingStarted = Stopwatch.GetTimestamp();
        // A fresh (pooled) buffer per share, owned by the coordinator once sent: see TrainingProtocol.
        var gradientSum = TensorBuffers.Rent(_replica?.ParameterCount ?? 0);
        ShareGradient gradient;
        try
        {
            IModelReplica replica;
            using (StepTrace.Time(StepPhase.LoadParameters, work.Step)) replica = ReplicaAt(work.Parameters);
            using (StepTrace.Time(StepPhase.Compute, work.Step))
                gradient = work.HalfAt > 0 && work.HalfAt < work.SampleIds.Length
                    ? ComputeInHalves(replica, work, gradientSum)
                    : replica.ComputeGradientSum(_data!.Train, work.SampleIds, work.MicroBatch, gradientSum);
            if (_settings.TestingSlowdown > 1) WaitPrecisely(TimeSpan.FromMilliseconds(gradient.ComputeMilliseconds * (_settings.TestingSlowdown - 1)));
        }
        catch (Exception e)
        {
            TensorBuffers.Return(gradientSum);
            _log.Error(e, "Share {0} of step {1} failed", work.ShareIndex, work.Step);
            replyTo.Tell(new TrainingProtocol.ShareFailed(work.RunId, work.Step, work.ShareIndex, e.Message));
            return;
        }
        double computeMs = gradient.ComputeMilliseconds * Math.Max(1, _settings.TestingSlowdown);
        TrainingMetrics.ShareComputed(gradient.SampleCount, computeMs);
        switch (_settings.TestingMisbehaviour)
        {
            case Misbehaviour.NanGradients:
                gradientSum.AsSpan(0, _replica!.ParameterCount).Fill(float.NaN);
                gradient = gradient with { GradientSumSquaredNorm = double.NaN };
                break;
            case Misbehaviour.SpeedLie:
                computeMs = gradient.SampleCount / LiedSamplesPerSecond * 1000;
                break;
            case Misbehaviour.HugeGradients:
                FlatMath.ScaleInPlace(gradientSum.AsSpan(0, _replica!.ParameterCount), 1e6f);
                gradient = gradient with { GradientSumSquaredNorm = FlatMath.SquaredNorm(gradientSum.AsSpan(0, _replica.ParameterCount)) };
                break;
            case Misbehaviour.NormLie:
                gradient = gradient with { GradientSumSquaredNorm = gradient.GradientSumSquaredNorm * 4 };
                break;
            case Misbehaviour.HalfNormLie when gradient.Halves is [var firstHalf, var secondHalf]:
                gradient = gradient with { Halves = [(firstHalf.Size, firstHalf.SumSquaredNorm * 100), secondHalf] };
                break;
        }
        // Read only for a coordinator elsewhere: one in this process ignores it (its own figure holds this worker's), and each
        // exact read stops every thread of the process (AllocationMeter).
        long allocated = replyTo.Path.Address.HasLocalScope ? 0 : _allocation.Report();
        var result = new TrainingProtocol.ShareComputed(
            work.RunId, work.Step, work.Parameters.Version, work.ShareIndex, gradient.SampleCount, gradient.LossSum,
            gradient.GradientSum, gradient.GradientSumSquaredNorm, computeMs,
            Stopwatch.GetElapsedTime(handlingStarted).TotalMilliseconds, PeakMemory.Bytes, allocated,
            gradient.BatchNormSums, gradient.Halves is [var a, var b] ? new TrainingProtocol.HalfNorms(a.Size, a.SumSquaredNorm, b.SumSquaredNorm) : null);
        try
        {
            using (StepTrace.Time(StepPhase.Reply, work.Step)) _links.Reply(replyTo, result, gradientSum); // the buffer is no longer this worker's after this call
        }
        catch (IOException e)
        {
            _log.Error(e, "Share {0} of step {1}: sending the result failed", work.ShareIndex, work.Step);
            replyTo.Tell(new TrainingProtocol.ShareFailed(work.RunId, work.Step, work.ShareIndex, e.Message));
        }
    }

    /// <summary>
    /// A share that is the whole step's batch, computed as two halves for the noise estimate (<see cref="ShareHalves"/>): the first
    /// <c>HalfAt</c> samples into the result's buffer, the rest into a second one that is then added in, each half's squared norm
    /// kept. The sum is the share's gradient as two shares would add up at the coordinator (the plain loop's halves, in its order).
    /// </summary>
    private ShareGradient ComputeInHalves(IModelReplica replica, TrainingProtocol.ComputeShare work, float[] gradientSum)
    {
        int count = work.SampleIds.Length, at = work.HalfAt;
        var ids = work.SampleIds.AsSpan();
        var rest = TensorBuffers.Rent(gradientSum.Length);
        try
        {
            var first = replica.ComputeGradientSum(_data!.Train, ids[..at], Math.Min(work.MicroBatch, at), gradientSum);
            var second = replica.ComputeGradientSum(_data.Train, ids[at..], Math.Min(work.MicroBatch, count - at), rest);
            double sumSquaredNorm = FlatMath.AddInPlaceAndSquaredNorm(gradientSum, rest);
            float[]? batchNormSums = first.BatchNormSums;
            if (batchNormSums is not null && second.BatchNormSums is { } more) FlatMath.AddInPlace(batchNormSums, more);
            return new ShareGradient(gradientSum, count, first.LossSum + second.LossSum, sumSquaredNorm,
                first.ComputeMilliseconds + second.ComputeMilliseconds)
            {
                BatchNormSums = batchNormSums,
                Halves = ShareHalves.AsShares(count, at, first.GradientSumSquaredNorm, second.GradientSumSquaredNorm),
            };
        }
        finally
        {
            TensorBuffers.Return(rest);
        }
    }

    /// <summary>
    /// The testing slowdown's wait, exact to microseconds: Thread.Sleep counts whole milliseconds,
    /// which for a share of 1.3 ms would wait 1 ms (and for 0.9 ms not at all). Sleeps the whole
    /// milliseconds (the core stays free, as it would for a slower machine elsewhere) and spins the rest.
    /// </summary>
    private static void WaitPrecisely(TimeSpan wait)
    {
        long start = Stopwatch.GetTimestamp();
        if (wait.TotalMilliseconds >= 2) Thread.Sleep((int)wait.TotalMilliseconds - 1);
        while (Stopwatch.GetElapsedTime(start) < wait) Thread.SpinWait(50);
    }

    private void OnEvaluate(TrainingProtocol.Evaluate request)
    {
        if (_settings.TestingMisbehaviour == Misbehaviour.Silent) return;
        if (_links.ParametersReady(request.Parameters)) Evaluate(request, Sender);
        else Defer(request, Sender);
    }

    private void Evaluate(TrainingProtocol.Evaluate request, IActorRef replyTo)
    {
        EvaluationResult result;
        try
        {
            var replica = ReplicaAt(request.Parameters);
            if (request.RunningStatistics is { } running) replica.LoadRunningStatistics(running);
            result = replica.Evaluate(_data!.Of(request.Split), request.Rows);
        }
        catch (Exception e)
        {
            _log.Error(e, "Evaluation part {0} of request {1} failed", request.Part, request.RequestId);
            replyTo.Tell(new TrainingProtocol.EvaluationFailed(request.RunId, request.RequestId, request.Part, e.Message));
            return;
        }
        if (_settings.TestingMisbehaviour == Misbehaviour.FakeEvaluation) result = result with { Correct = result.Count };
        replyTo.Tell(new TrainingProtocol.EvaluationDone(
            request.RunId, request.RequestId, request.Part, request.Parameters.Version, result.LossSum, result.Correct, result.Count));
    }
}
