using Akka.Actor;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Actors;

/// <summary>What a run's coordinator is made of, and how it may be rebuilt after a failure.</summary>
/// <param name="FirstSession">Builds the session the run starts with (fresh, or from --resume / a standby's checkpoint).</param>
/// <param name="RecoveredSession">Builds a session from the newest intact checkpoint after the coordinator failed
/// (and logs ResumedFromCheckpoint); null when a failure must end the run (the local cluster, or no checkpoints).</param>
public sealed record CoordinatorRun(
    Func<TrainingSession> FirstSession,
    Func<TrainingSession>? RecoveredSession,
    CoordinatorSettings Settings,
    string LogPath,
    TaskCompletionSource<RunResult> Completion,
    Action<StepRecord, TrainingSession>? OnStep);

/// <summary>
/// The parent of a run's <see cref="CoordinatorActor"/> and the one place where its failures are
/// decided (promise 8). Akka's default would restart the coordinator, wiping its worker list and
/// the step in flight: the run would hang with nothing logged. Instead its supervision strategy
/// stops the coordinator on any exception and then decides:
/// <list type="bullet">
/// <item>with <see cref="CoordinatorRun.RecoveredSession"/> (node mode with checkpoints) and fewer
/// than <see cref="MaxRecoveries"/> recoveries so far: logs CoordinatorRecovering and starts a new
/// coordinator from the newest intact checkpoint; the workers, which watch the coordinator, see
/// it die and register again through this actor;</item>
/// <item>otherwise: the run fails with the reason, the last committed step and the newest intact
/// checkpoint (<see cref="RunFailedException"/>), and every worker that registered is told the run
/// ended.</item>
/// </list>
/// Workers register through this actor (the local workers address it; in node mode it is the
/// cluster singleton the workers' proxy reaches); everything it receives goes on to the current
/// coordinator.
/// </summary>
public sealed class RunSupervisor : ReceiveActor
{
    public const int MaxRecoveries = 3;
    public const string CoordinatorName = "coordinator";

    private readonly CoordinatorRun _run;
    private readonly HashSet<IActorRef> _registered = [];
    private TrainingSession? _session;
    private IActorRef _coordinator = ActorRefs.Nobody;
    private Exception? _failure;
    private int _recoveries;

    public static Props Props(CoordinatorRun run) => Akka.Actor.Props.Create(() => new RunSupervisor(run));

    public RunSupervisor(CoordinatorRun run)
    {
        _run = run;
        Receive<Terminated>(t => t.ActorRef.Equals(_coordinator), _ => OnCoordinatorStopped());
        Receive<Terminated>(_ => { });
        Receive<TrainingProtocol.RegisterWorker>(register =>
        {
            _registered.Add(Sender);
            _coordinator.Forward(register);
        });
        ReceiveAny(message => _coordinator.Forward(message));
    }

    /// <summary>Stop the coordinator on any exception and decide afterwards: never a restart that forgets the run.</summary>
    /// <remarks>Akka's own logging of the failure is off: RunFailed or CoordinatorRecovering carry the exception in the event log.</remarks>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(-1, -1, error =>
    {
        _failure = error;
        return Directive.Stop;
    }, loggingEnabled: false);

    protected override void PreStart()
    {
        try
        {
            StartCoordinator(_run.FirstSession());
        }
        catch (Exception e)
        {
            _run.Completion.TrySetException(e);
            Context.Stop(Self);
        }
    }

    protected override void PostStop() =>
        // Stopped from outside (the node leaves, the system shuts down) before the run ended: nobody may wait for it forever.
        _run.Completion.TrySetException(_session?.Failure("the coordinator was stopped before the run ended")
                                        ?? new RunFailedException("the coordinator was stopped before the run started", -1, null));

    private void StartCoordinator(TrainingSession session)
    {
        _session = session;
        _coordinator = Context.ActorOf(CoordinatorActor.Props(session, _run.Settings, _run.LogPath, _run.Completion, _run.OnStep), CoordinatorName + "-" + _recoveries);
        Context.Watch(_coordinator);
    }

    private void OnCoordinatorStopped()
    {
        if (_run.Completion.Task.IsCompleted)
        {
            Context.Stop(Self); // the coordinator ended the run itself: completed, failed by decision, or interrupted
            return;
        }
        var error = _failure ?? new InvalidOperationException("the coordinator stopped without ending the run");
        _failure = null;
        var session = _session!;
        string reason = $"the coordinator failed: {error.Message}";
        if (_run.RecoveredSession is { } recover && _recoveries < MaxRecoveries)
        {
            _recoveries++;
            session.Events.CoordinatorRecovering(error, session.LastCommittedStep, _recoveries, MaxRecoveries);
            try
            {
                StartCoordinator(recover());
                return;
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                reason += $"; recovering from a checkpoint failed too: {e.Message}";
            }
        }
        else if (_run.RecoveredSession is not null)
        {
            reason += $" (after {MaxRecoveries} recoveries from checkpoints)";
        }
        var ended = new TrainingProtocol.RunEnded(session.Events.RunId, Succeeded: false);
        // In the failed coordinator's name: a worker believes the end of its run only from the exact actor that accepted it.
        foreach (var worker in _registered) worker.Tell(ended, _coordinator);
        _run.Completion.TrySetException(session.Failure(reason, error));
        Context.Stop(Self);
    }
}
