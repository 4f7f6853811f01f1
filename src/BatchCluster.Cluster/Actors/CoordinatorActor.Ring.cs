using System.Security.Cryptography;
using Akka.Actor;
using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Coordination;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Reduction;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// The coordinator's part of <c>--reduce ring</c> (docs/architecture.md, "The ring"): once every
/// share of a step is computed (each gradient sum stays on its worker), the workers holding them
/// form a ring in registration order and reduce; the coordinator decides the step from the shard
/// norms, applies each shard as it arrives and sends it back (<see cref="RingStep"/>), and the step
/// commits when every shard is applied. Faults: a member lost before the commit takes its finished
/// shares with it (the round re-plans them onto the others, then a new generation reduces again);
/// a member that reports a failure makes the ring re-form after a back-off, and after
/// <see cref="MaxFailedReductions"/> failures in a row its suspect is lost; a member lost after the
/// commit leaves the others of its ring with the whole model pushed to them (their all-gather may
/// have broken). Any fault makes the next ring a new one (new links, new tokens).
/// </summary>
public sealed partial class CoordinatorActor
{
    private const int MaxFailedReductions = 3;
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>The back-off of a failed reduction has passed (for the step and generation count it was set for).</summary>
    private sealed record RetryReduction(long Step, int Generations);

    private bool Ring => _session.Config.Reduce == ReduceTopology.Ring;

    /// <summary>The current ring's number, members in ring order, and the token each member shows its downstream neighbour.</summary>
    private long _ringEpoch = -1;
    private int[] _ringMembers = [];
    /// <summary>The layout of the last ring (the same while the member count is).</summary>
    private RingLayout? _ringLayout;
    private byte[][] _ringTokens = [];
    /// <summary>Why the next ring must be a new one (new links and tokens), or null while the current one stands.</summary>
    private string? _ringFault = "the run's first ring";
    /// <summary>The last ring that committed: its members, the version their all-gather makes, its step and generation.</summary>
    private (IReadOnlyList<int> Members, long Version, long Step, int Generation)? _lastRing;
    /// <summary>The newest parameter version each worker has shown it holds (a result or evaluation at it).</summary>
    private readonly Dictionary<int, long> _confirmed = [];

    /// <returns>false when the worker opened no ring listener (refused: it cannot take part).</returns>
    private bool AdmitToRing(WorkerRoster<IActorRef>.Entry entry, int ringPort)
    {
        if (ringPort > 0)
        {
            _links.RingPortOf(entry.Key, ringPort);
            return true;
        }
        entry.Handle.Tell(new TrainingProtocol.WorkerRejected("this run reduces by ring and the worker opened no ring listener; run the same BatchCluster build on every node"));
        LoseWorker(entry, "no ring listener");
        return false;
    }

    private void Confirmed(int worker, long version)
    {
        if (Ring && version > _confirmed.GetValueOrDefault(worker, -1)) _confirmed[worker] = version;
    }

    /// <summary>A worker is gone: the reduction it is part of is abandoned, the next ring is new, and the others of the last committed ring get the whole model if they have not shown they hold it.</summary>
    private void RingMemberGone(WorkerRoster<IActorRef>.Entry entry, string reason)
    {
        if (Array.IndexOf(_ringMembers, entry.Key) >= 0) _ringFault ??= $"{entry.Description.Id} left the ring ({reason})";
        if (_step is { Ring: { } ring } step && ring.Reduction.IndexOf(entry.Key) >= 0)
        {
            AbortReduction(step, $"{entry.Description.Id} {reason}");
            step.RetryPending = false; // the round re-opens for its shares; the ring re-forms when they are back
        }
        if (_lastRing is { } last && last.Members.Contains(entry.Key))
            foreach (int member in last.Members)
                if (member != entry.Key && _confirmed.GetValueOrDefault(member, -1) < last.Version) PushParameters(member);
        _confirmed.Remove(entry.Key);
    }

    /// <summary>Sends the worker the whole model now (a request of it may already wait for parameters its ring did not deliver).</summary>
    private void PushParameters(int worker)
    {
        if (_roster.Find(worker) is not { } entry) return;
        _links.ForgetCarried(worker);
        _links.SendParametersNow(entry.Handle, worker, _session.ParameterVersion, _session.Parameters);
    }

    /// <summary>
    /// When a step starts: its ring is planned from the shares just sent (generation 0), and every
    /// member is told at once, so it starts reducing the moment its own shares are computed instead
    /// of waiting for the round to complete here and a message to come back. The plan holds if the
    /// round completes with exactly these shares; otherwise it is abandoned then and a new
    /// generation reduces what the round did complete.
    /// </summary>
    private void PlanReduction(StepInFlight step, IReadOnlyList<RoundCommand> start)
    {
        var plans = new List<(int Worker, TrainingProtocol.ReduceShares Part)>();
        var shares = new List<(int Slot, int Worker)>(start.Count);
        foreach (var command in start)
            if (command is SendWork work) shares.Add((work.Slot, work.Worker));
        step.Ring = FormRing(step, shares, plans);
        step.Plans = plans;
    }

    /// <summary>The round completed with a ring planned at the step's start: it goes on if the shares are those it was planned for.</summary>
    private void RoundCompleted(StepInFlight step, RingStep planned)
    {
        CancelDeadline();
        var done = step.Round.Completed;
        if (!SameShares(done, planned.Planned))
        {
            AbortReduction(step, "the round was re-planned after its ring was");
            BeginReduction(step);
            return;
        }
        ArmDeadline(Now + _settings.StepDeadline.TotalMilliseconds);
        CarryRing(step, planned, RingEvent.RoundComplete, done, null);
    }

    /// <summary>Every share of the step is computed (and no planned ring stands): the workers holding them reduce, as a ring in registration order.</summary>
    private void BeginReduction(StepInFlight step)
    {
        CancelDeadline();
        if (!step.Round.CoversIdsExactlyOnce())
        {
            FailRun($"step {step.Batch.Step}: the shares do not cover the global batch exactly once");
            return;
        }
        var done = step.Round.Completed;
        if (done.Any(s => _roster.Find(s.Worker) is null))
        {
            FailRun($"step {step.Batch.Step}: a share's result is held by a worker that is no longer registered"); // the round re-plans those: a bug if seen
            return;
        }
        var parts = new List<(int Worker, TrainingProtocol.ReduceShares Part)>();
        var ring = FormRing(step, done.Select(s => (s.Slot, s.Worker)).ToList(), parts);
        foreach (var (worker, part) in parts) _roster.Find(worker)!.Handle.Tell(part, Self);
        step.Ring = ring;
        ArmDeadline(Now + _settings.StepDeadline.TotalMilliseconds);
        CarryRing(step, ring, RingEvent.RoundComplete, done, null);
    }

    private static bool SameShares(IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare> done, IReadOnlyList<(int Slot, int Worker)> planned)
    {
        if (done.Count != planned.Count) return false;
        for (int i = 0; i < done.Count; i++)
            if (done[i].Slot != planned[i].Slot || done[i].Worker != planned[i].Worker) return false;
        return true;
    }

    private List<ShareTally> Tallies(IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare> done) =>
        done.Select(s => ShareTally.Reduced(s.Result.SampleCount, s.Result.LossSum, s.Result.GradientSumSquaredNorm,
            s.Result.ComputeMilliseconds, _roster.NameOf(s.Worker))).ToList();

    /// <summary>
    /// A ring (generation) over the workers holding <paramref name="shares"/>, in registration order,
    /// and each member's part of it (<paramref name="parts"/>, for the caller to send). A new ring
    /// (epoch: new links and tokens) when the members changed or a fault happened since the last.
    /// </summary>
    private RingStep FormRing(StepInFlight step, IReadOnlyList<(int Slot, int Worker)> shares, List<(int Worker, TrainingProtocol.ReduceShares Part)> parts)
    {
        var members = new List<int>(shares.Count);
        foreach (var entry in _roster.All)
            foreach (var share in shares)
                if (share.Worker == entry.Key)
                {
                    members.Add(entry.Key);
                    break;
                }
        int generation = step.Generations++;
        string? newRing = _ringFault ?? (members.SequenceEqual(_ringMembers) ? null : "the workers holding the step's shares changed");
        if (newRing is not null)
        {
            _ringEpoch++;
            _ringMembers = members.ToArray();
            _ringTokens = members.Select(_ => RandomNumberGenerator.GetBytes(FrameHeader.TokenBytes)).ToArray();
            _ringFault = null;
            _session.Events.RingFormed(step.Batch.Step, generation, _ringEpoch, members.Select(_roster.NameOf).ToArray(), _session.Config.RingChunkValues, newRing);
        }
        if (_ringLayout?.Members != members.Count) _ringLayout = new RingLayout(_session.Parameters.Length, members.Count, _session.Config.RingChunkValues);
        var layout = _ringLayout;
        var reduction = new RingReduction(step.Batch.Step, _session.ParameterVersion, generation, _ringEpoch, members, layout);
        int n = members.Count;
        for (int k = 0; k < n; k++)
        {
            var member = _roster.Find(members[k])!;
            var next = _roster.Find(members[(k + 1) % n])!;
            var (host, port) = _links.RingEndpoint(next.Key, next.Handle)!.Value;
            int count = 0;
            foreach (var share in shares)
                if (share.Worker == member.Key) count++;
            var slots = new int[count];
            count = 0;
            foreach (var share in shares)
                if (share.Worker == member.Key) slots[count++] = share.Slot;
            parts.Add((member.Key, new TrainingProtocol.ReduceShares(_runId, step.Batch.Step, _session.ParameterVersion, generation, _ringEpoch, k, n,
                _session.Config.RingChunkValues, slots, new TrainingProtocol.RingPeer(host, port, _ringTokens[k]), _ringTokens[(k - 1 + n) % n])));
            // What its ring links carry (the layout says exactly; the shard to and from the coordinator is counted as it travels).
            _links.CountBetweenWorkers(member.Key, (layout.RingValuesSent(k) + layout.RingValuesSent(layout.Upstream(k))) * (long)_links.BytesPerValueOnTheWire);
        }
        return new RingStep(_session, _links, step.Batch, reduction, shares);
    }

    private void OnShardArrived(ShardArrived arrived)
    {
        var step = _step;
        var ring = step?.Ring;
        var h = arrived.Header;
        bool current = ring is not null && h.Step == ring.Reduction.Step && h.Version == ring.Reduction.Version
                       && h.Generation == ring.Reduction.Generation && _roster.Find(arrived.WorkerKey) is not null
                       && h.Slot == ring.Reduction.IndexOf(arrived.WorkerKey);
        if (!_links.OnShard(arrived, current)) return; // of an abandoned reduction, or from a connection no longer the worker's
        CarryRing(step!, ring!, h.Kind == FrameKind.ShardNorm ? RingEvent.Norm : RingEvent.Chunk, null, arrived);
    }

    private enum RingEvent { RoundComplete, Norm, Chunk }

    /// <summary>Hands one event to the reduction (a complete round with its tallies, or a frame) and carries out its outcome.</summary>
    private void CarryRing(StepInFlight step, RingStep ring, RingEvent happened,
        IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare>? done, ShardArrived? frame)
    {
        RingStep.Outcome outcome;
        try
        {
            outcome = happened switch
            {
                RingEvent.RoundComplete => ring.OnRoundComplete(done!, Tallies(done!), Now),
                RingEvent.Norm => ring.OnNorm(frame!.WorkerKey, frame.Header.Scalar),
                _ => ring.OnChunk(frame!),
            };
        }
        catch (RunFailedException stop)
        {
            FailRun(stop); // too many non-finite steps, or non-finite parameters: a decision, with the checkpoints intact
            return;
        }
        switch (outcome)
        {
            case RingStep.MemberFault fault:
                LoseWorker(_roster.Find(fault.Worker), $"ring protocol: {fault.Reason}", downNode: true); // abandons the reduction, re-plans its shares
                break;
            case RingStep.Skipped:
                FinishReduction(step, ring, applied: false);
                break;
            case RingStep.Applied:
                FinishReduction(step, ring, applied: true);
                break;
        }
    }

    /// <summary>The step is decided: committed (every shard applied and sent back) or skipped (non-finite; the members keep their parameters).</summary>
    private void FinishReduction(StepInFlight step, RingStep ring, bool applied)
    {
        CancelDeadline();
        StepRecord? record = null;
        if (applied)
        {
            // After the round completed, the step waited for the ring alone: its time, less the coordinator's updates, is transfer.
            var measured = Measure(ring.Done!, extraTransferMs: Math.Max(0, Now - ring.RoundCompletedAtMs - ring.UpdateMs));
            try
            {
                record = ring.Complete(measured, step.StartedAtMs);
            }
            catch (RunFailedException stop)
            {
                FailRun(stop);
                return;
            }
        }
        else
        {
            foreach (int member in ring.Reduction.Members)
                _roster.Find(member)?.Handle.Tell(new TrainingProtocol.StepSkipped(_runId, step.Batch.Step, _session.ParameterVersion));
        }
        // Every member holds (or, once its all-gather ends, will hold) the version now current: requests at it carry no parameters.
        foreach (int member in ring.Reduction.Members) _links.MarkCarried(member, _session.ParameterVersion);
        _lastRing = (ring.Reduction.Members, _session.ParameterVersion, step.Batch.Step, ring.Reduction.Generation);
        _links.EndStep();
        _step = null;
        AfterCommit(record);
    }

    /// <summary>Abandons the reduction in flight: every shard applied is undone, and the next ring is a new one.</summary>
    private void AbortReduction(StepInFlight step, string reason)
    {
        if (step.Ring is not { } ring) return;
        ring.Abort();
        step.Ring = null;
        _ringFault ??= reason;
        _session.Events.ReductionAborted(step.Batch.Step, ring.Reduction.Generation, reason);
        CancelDeadline();
    }

    private void OnReductionFailed(TrainingProtocol.ReductionFailed failed)
    {
        var worker = _roster.Find(Sender);
        if (worker is null || failed.RunId != _runId)
        {
            Dropped(failed.Step, -1, "a reduction failure report from no ring member of this run");
            return;
        }
        var step = _step;
        if (step?.Ring is { } ring && failed.Step == ring.Reduction.Step && failed.Generation == ring.Reduction.Generation
            && ring.Reduction.IndexOf(worker.Key) is var k and >= 0)
        {
            string reason = $"{worker.Description.Id}: {failed.Reason}";
            var suspect = failed.UpstreamSuspected ? _roster.Find(ring.Reduction.Members[(k - 1 + ring.Reduction.Members.Count) % ring.Reduction.Members.Count]) : worker;
            RetryOrLose(step, reason, suspect);
            return;
        }
        if (_lastRing is { } last && failed.Step == last.Step && failed.Generation == last.Generation && last.Members.Contains(worker.Key))
        {
            // A committed step whose all-gather broke there: that worker gets the whole model now.
            _ringFault ??= $"{worker.Description.Id}'s all-gather of step {failed.Step} broke: {failed.Reason}";
            PushParameters(worker.Key);
        }
    }

    /// <summary>
    /// A reduction failed without a member being lost (yet): abandon it and re-form the ring after a
    /// back-off (a member that died breaks its neighbours' links before its own loss is known here,
    /// so the ring is re-formed once that has had a moment to arrive); after
    /// <see cref="MaxFailedReductions"/> failures in a row the suspect is lost, or with none the run fails.
    /// </summary>
    private void RetryOrLose(StepInFlight step, string reason, WorkerRoster<IActorRef>.Entry? suspect)
    {
        AbortReduction(step, reason);
        if (++step.FailedReductions >= MaxFailedReductions)
        {
            step.FailedReductions = 0;
            if (suspect is null)
            {
                FailRun($"step {step.Batch.Step}: the ring reduction failed {MaxFailedReductions} times in a row ({reason})");
                return;
            }
            LoseWorker(suspect, $"the ring reduction of step {step.Batch.Step} failed {MaxFailedReductions} times in a row around it ({reason})", downNode: true);
            return;
        }
        step.RetryPending = true;
        var delay = FirstRetryDelay * Math.Pow(2, step.FailedReductions - 1);
        Timers.StartSingleTimer("ring-retry", new RetryReduction(step.Batch.Step, step.Generations), delay);
    }

    private void OnRetryReduction(RetryReduction retry)
    {
        var step = _step;
        if (step is null || step.Batch.Step != retry.Step || step.Generations != retry.Generations || !step.RetryPending) return;
        step.RetryPending = false;
        if (step.Ring is null && step.Round.State == RoundState.Complete) BeginReduction(step);
    }

    /// <summary>The reduction missed the step deadline: the members still owing their shard are named; it is re-formed like a failed one, and fails the run after <see cref="MaxFailedReductions"/>.</summary>
    private void OnReductionDeadline(StepInFlight step)
    {
        var reduction = step.Ring!.Reduction;
        var late = reduction.Members.Where(m => reduction.AnnouncedNorm(m) is null || reduction.ExpectedChunk(m) is not null).Select(_roster.NameOf).ToArray();
        RetryOrLose(step, $"the reduction missed its {_settings.StepDeadline.TotalSeconds:G} s deadline; shards still owed by {string.Join(", ", late)}", suspect: null);
    }
}
