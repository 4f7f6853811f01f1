using Akka.Actor;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Coordination;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// Quarantine (docs/robustness.md): a worker whose share cannot be right, or who misses step
/// deadlines, is held out of the work for a back-off that doubles on every repeat, and expelled
/// after the limit. The decisions are <see cref="WorkerQuarantine"/>'s (plain code); this shell
/// moves the worker's shares within the round (exact, as for a lost worker), logs, and releases.
/// </summary>
public sealed partial class CoordinatorActor
{
    private const string ReleaseTimer = "quarantine-release";

    /// <summary>Workers that missed a deadline, handled after the round's commands (quarantine re-plans the round).</summary>
    private sealed record MissedDeadlines(int[] Workers);

    private sealed class ReleaseDue
    {
        public static readonly ReleaseDue Instance = new();
    }

    private readonly WorkerQuarantine _quarantine;
    /// <summary>Expelled workers (the exact actors, UID included): a registration from one is refused.</summary>
    private readonly HashSet<IActorRef> _expelled = [];

    private void QuarantineHandlers()
    {
        Receive<MissedDeadlines>(OnMissedDeadlines);
        Receive<ReleaseDue>(_ => OnReleaseDue());
    }

    /// <summary>
    /// Late workers are quarantined after <see cref="QuarantinePolicy.MissedDeadlines"/> misses in a
    /// row, but never the last worker available: with nobody to take its share, waiting for it is
    /// the better choice (the round keeps reporting the stall).
    /// </summary>
    private void OnMissedDeadlines(MissedDeadlines missed)
    {
        foreach (int key in missed.Workers)
        {
            if (_roster.Find(key) is not { } entry || !_roster.IsAvailable(entry) || !_quarantine.MissedDeadline(key)) continue;
            if (_roster.ReadyCount <= 1) continue;
            QuarantineWorker(entry, $"missed {_quarantine.Policy.MissedDeadlines} step deadline(s) of {_settings.StepDeadline.TotalSeconds:0.###} s in a row",
                withResults: Ring);
        }
    }

    /// <summary>
    /// Holds <paramref name="entry"/> out of the work (or expels it after the limit) and moves its
    /// shares of the round in flight onto the others.
    /// </summary>
    /// <param name="withResults">Its finished shares move too (they are wrong, or under the ring they stay on the worker).</param>
    private void QuarantineWorker(WorkerRoster<IActorRef>.Entry entry, string reason, bool withResults)
    {
        var decision = _quarantine.Quarantine(entry.Key, Now); // out of the work from now on (expelled: until it is forgotten)
        if (!decision.Expel)
        {
            _session.Events.WorkerQuarantined(_session.NextStep, entry.Key, entry.Handle.Path.ToString(), entry.Description.Id, reason,
                decision.Nth, _quarantine.Policy.Limit, (decision.UntilMs - Now) / 1000);
            ArmRelease();
        }
        if (Ring)
        {
            RingMemberGone(entry, $"quarantined: {reason}");
            _links.ForgetCarried(entry.Key); // back after its quarantine, it gets the whole model
        }
        // Its shares move first, with its results where they are suspect: an expelled worker's loss alone would keep them.
        if (_step is { } step)
        {
            if (withResults && !Ring)
            {
                step.FoldCursor = 0; // a result already added may be among those that move: the running sum starts again
                step.Folded = 0;
            }
            ApplyStep(step.Round.OnWorkerLost(entry.Key, $"quarantined: {reason}", Now, withResults));
        }
        else if (_evaluation is not null)
        {
            DropAuditor(_evaluation, entry.Key);
            if (_evaluation is not null) ApplyEvaluation(_evaluation.Round.OnWorkerLost(entry.Key, $"quarantined: {reason}", Now));
        }
        if (decision.Expel) Expel(entry, $"{reason}, after {decision.Nth - 1} quarantine(s)");
    }

    /// <summary>Removes the worker from the run for good: it is told, its node is downed, and it may not register again.</summary>
    private void Expel(WorkerRoster<IActorRef>.Entry entry, string reason)
    {
        _expelled.Add(entry.Handle);
        entry.Handle.Tell(new TrainingProtocol.WorkerRejected($"expelled from run {_runId}: {reason}"));
        LoseWorker(entry, $"expelled: {reason}", downNode: true);
    }

    /// <summary>
    /// The samples of the workers <paramref name="blamed"/> for a step's non-finite (or outlier) shares were as bad when
    /// others computed them: the fault follows the model or the data, so their quarantine ends now and does not count.
    /// </summary>
    private void PardonBlamed(List<int> blamed)
    {
        bool any = false;
        foreach (int key in blamed)
        {
            if (!_quarantine.Pardon(key) || _roster.Find(key) is not { } entry) continue;
            any = true;
            _session.Events.WorkerReleased(_session.NextStep, key, entry.Handle.Path.ToString(), _roster.ReadyCount, pardoned: true);
        }
        ArmRelease();
        if (any) WorkersAvailable();
    }

    private void ArmRelease()
    {
        if (_quarantine.NextReleaseMs is double at) Timers.StartSingleTimer(ReleaseTimer, ReleaseDue.Instance, TimeSpan.FromMilliseconds(Math.Max(0, at - Now)));
        else Timers.Cancel(ReleaseTimer);
    }

    private void OnReleaseDue()
    {
        if (ReleaseDueWorkers()) WorkersAvailable();
        else ArmRelease(); // early (a timer's rounding): again for what is left
    }

    /// <summary>
    /// Ends the quarantines whose back-off has passed. Called by the release timer and at every step boundary (a
    /// scheduled message can come late or, as seen under load, not at all; a step boundary is where new work is planned).
    /// </summary>
    /// <returns>Whether a worker in the roster was released.</returns>
    private bool ReleaseDueWorkers()
    {
        if (_quarantine.NextReleaseMs is not double due || due > Now) return false; // the common case, at every step: nothing to do
        bool any = false;
        foreach (int key in _quarantine.Release(Now))
        {
            if (_roster.Find(key) is not { } entry) continue;
            any = true;
            _session.Events.WorkerReleased(_session.NextStep, key, entry.Handle.Path.ToString(), _roster.ReadyCount, pardoned: false);
        }
        ArmRelease();
        return any;
    }

    /// <summary>More workers may take work now (one was released): what a newly ready worker does, in whatever phase the run is.</summary>
    private void WorkersAvailable()
    {
        switch (_behaviour)
        {
            case nameof(Paused):
                ResumeIfPossible();
                break;
            case nameof(WaitingForWorkers):
                if (_roster.ReadyCount >= _settings.StartWorkers) BeginStepOrFinish();
                break;
            case nameof(Stepping) when _step is not null:
                ApplyStep(_step.Round.OnWorkersChanged(Now));
                break;
            case nameof(Evaluating) or nameof(Finishing) when _evaluation is not null:
                ApplyEvaluation(_evaluation.Round.OnWorkersChanged(Now));
                break;
        }
    }
}
