using BatchCluster.Cluster.Links;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Reduction;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// The second half of a step under <c>--reduce ring</c> (docs/architecture.md, "The ring"): the
/// reduction of one generation, as the coordinator drives it. Once the round is complete (the
/// shares' tallies are known) and every member's shard norm is in, the step is decided
/// (<see cref="TrainingSession.BeginShardedCommit"/>: skip, or apply with clipping by the whole
/// batch's norm); each chunk of a reduced shard is checked (the chunk due from that member, finite
/// where its norm said so, its shard matching the norm announced), applied to the live parameters
/// and sent back updated at once, so the coordinator's two directions overlap. A reduction planned
/// when the step starts (generation 0) may get its norms and chunks before the round completes:
/// they wait here until the decision. <see cref="Abort"/> undoes every chunk applied: until the last
/// chunk, the run stays exactly at its last commit. The actor owns this object; the chunks' buffers
/// belong to it from <see cref="OnChunk"/> on and go back to the pool here.
/// </summary>
internal sealed class RingStep(TrainingSession session, CoordinatorLinks links, GlobalBatch batch, RingReduction reduction,
    IReadOnlyList<(int Slot, int Worker)> planned)
{
    public abstract record Outcome;
    /// <summary>More norms or chunks are due.</summary>
    public sealed record Waiting : Outcome;
    /// <summary>The step was decided non-finite and not applied (the session logged and counted it).</summary>
    public sealed record Skipped : Outcome;
    /// <summary>Every shard is applied and sent back: <see cref="Complete"/> the step.</summary>
    public sealed record Applied : Outcome;
    /// <summary>A member broke the protocol or sent values its norm denies: it is to be lost, the reduction abandoned.</summary>
    public sealed record MemberFault(int Worker, string Reason) : Outcome;

    // The outcomes without data are shared: a step sees one per chunk.
    private static readonly Waiting StillWaiting = new();
    private static readonly Skipped NotApplied = new();
    private static readonly Applied AllApplied = new();
    private readonly List<ShardArrived> _early = [];
    private TrainingSession.ShardedCommit? _commit;
    private IReadOnlyList<ShareTally>? _shares;
    private bool _skipped;
    private bool _over;

    public RingReduction Reduction { get; } = reduction;
    /// <summary>The round's completed shares (once complete), for the step's record.</summary>
    public IReadOnlyList<Core.Coordination.WorkRound<Protocol.TrainingProtocol.ShareComputed>.CompletedShare>? Done { get; private set; }

    /// <summary>The shares (slot, worker) this ring reduces, in plan order.</summary>
    public IReadOnlyList<(int Slot, int Worker)> Planned { get; } = planned;
    /// <summary>When the round completed (the coordinator's clock): from then on the step waits for the ring alone.</summary>
    public double RoundCompletedAtMs { get; private set; }
    /// <summary>Whether the round is complete and its shares' tallies are here.</summary>
    public bool SharesKnown => _shares is not null;
    /// <summary>Milliseconds the coordinator spent applying shards (the step's update time).</summary>
    public double UpdateMs { get; private set; }

    /// <summary>The round is complete with this reduction's layout: its shares and their tallies, in plan order.</summary>
    /// <exception cref="RunFailedException">The decision ended the run (the MaxBadSteps-th non-finite step in a row).</exception>
    public Outcome OnRoundComplete(IReadOnlyList<Core.Coordination.WorkRound<Protocol.TrainingProtocol.ShareComputed>.CompletedShare> done,
        IReadOnlyList<ShareTally> shares, double nowMs)
    {
        Done = done;
        _shares = shares;
        RoundCompletedAtMs = nowMs;
        return TryDecide();
    }

    /// <exception cref="RunFailedException">The decision ended the run (the MaxBadSteps-th non-finite step in a row).</exception>
    public Outcome OnNorm(int worker, double squaredNorm)
    {
        if (Reduction.OnNorm(worker, squaredNorm) is { } refused) return new MemberFault(worker, refused);
        return TryDecide();
    }

    private Outcome TryDecide()
    {
        if (_shares is null || !Reduction.NormsComplete || _commit is not null || _skipped) return StillWaiting;
        _commit = session.BeginShardedCommit(batch, _shares, Reduction.SquaredNormSum);
        if (_commit is null)
        {
            _skipped = true;
            ReturnEarly();
            return NotApplied;
        }
        // Nothing adds to _early once the commit exists (OnChunk applies at once), so it is read in place.
        Outcome outcome = StillWaiting;
        for (int i = 0; i < _early.Count; i++)
        {
            var chunk = _early[i];
            _early[i] = null!; // applied or returned below: this list no longer owns its buffer
            outcome = Apply(chunk);
            if (outcome is MemberFault)
            {
                for (int j = i + 1; j < _early.Count; j++) TensorBuffers.Return(_early[j].Values);
                _early.Clear();
                return outcome;
            }
        }
        _early.Clear();
        return outcome;
    }

    /// <summary>A chunk of a member's reduced shard; its buffer is this object's from here on.</summary>
    /// <exception cref="RunFailedException">Applying it made a parameter non-finite.</exception>
    public Outcome OnChunk(ShardArrived arrived)
    {
        int worker = arrived.WorkerKey;
        double squaredNorm = FlatMath.SquaredNorm(arrived.Values);
        string? refused = Reduction.OnChunk(worker, arrived.Header.Offset, arrived.Header.Count, squaredNorm);
        if (refused is null && !double.IsFinite(squaredNorm) && Reduction.AnnouncedNorm(worker) is double announced && double.IsFinite(announced))
            refused = "non-finite values in a shard whose norm it announced finite";
        if (refused is not null)
        {
            TensorBuffers.Return(arrived.Values);
            return new MemberFault(worker, refused);
        }
        if (_skipped)
        {
            TensorBuffers.Return(arrived.Values);
            return StillWaiting;
        }
        if (_commit is null)
        {
            _early.Add(arrived);
            return StillWaiting;
        }
        return Apply(arrived);
    }

    private Outcome Apply(ShardArrived arrived)
    {
        var h = arrived.Header;
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var updated = _commit!.Apply(h.Offset, arrived.Values);
            links.SendUpdate(arrived.WorkerKey, new FrameHeader(FrameKind.UpdatedShard, h.Precision, 0, batch.Step, Reduction.Version + 1, h.Slot, updated.Length, 0)
                { Generation = Reduction.Generation, Offset = h.Offset }, updated);
        }
        finally
        {
            UpdateMs += System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            TensorBuffers.Return(arrived.Values);
        }
        return Reduction.ShardsComplete && _commit.AppliedValues == session.Parameters.Length ? AllApplied : StillWaiting;
    }

    /// <summary>Counts the step (after <see cref="Applied"/>).</summary>
    public StepRecord Complete(StepMeasurements measured, double stepStartedAtMs)
    {
        _over = true;
        return _commit!.Complete(measured, stepStartedAtMs);
    }

    /// <summary>Abandons the reduction: every chunk applied is undone, waiting chunks go back to the pool.</summary>
    public void Abort()
    {
        if (_over) return;
        _over = true;
        _commit?.RollBack();
        ReturnEarly();
    }

    private void ReturnEarly()
    {
        foreach (var chunk in _early)
            if (chunk is not null) TensorBuffers.Return(chunk.Values); // null: applied before a failure
        _early.Clear();
    }
}
