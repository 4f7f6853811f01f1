using BatchCluster.Core.Planning;

namespace BatchCluster.Core.Coordination;

public enum RoundState
{
    /// <summary>Shares are out; waiting for results.</summary>
    Running,
    /// <summary>Some ids have no worker (none is ready); they go out when one is.</summary>
    WaitingForWorkers,
    /// <summary>Every id has exactly one result.</summary>
    Complete,
    /// <summary>The round cannot finish; see the <see cref="RoundFailed"/> command.</summary>
    Failed,
}

/// <summary>
/// One scatter-gather round of the coordinator: a training step (ids are sample ids, results are
/// gradient sums) or an evaluation (ids are rows of a split, results are loss and accuracy sums).
/// Plain code with no actors, no clock and no I/O: it takes events (a result, a failure report, a
/// lost worker, a ready worker, a deadline) with the time they happened, and returns the
/// <see cref="RoundCommand"/>s its host must carry out; the host reads completion from <see cref="State"/>.
///
/// The promise it keeps: <b>every id is covered by exactly one live share or is waiting for a
/// worker</b>, at every moment; the round completes when every live share has its result, so the
/// results cover the ids exactly once. A share is abandoned (its late result refused) only at the
/// moment its ids are given to new shares.
///
/// Re-planning, and why it ends:
/// <list type="bullet">
/// <item>A lost worker or a worker that reports a failure (or returns a result of the wrong size)
/// loses its unfinished shares at once; their ids are split, by capacity, over idle workers if
/// any, else over any usable worker, else they wait for a worker. A worker that failed gets
/// nothing more in this round; when every ready worker has failed, the round fails.</item>
/// <item>A share past its deadline moves only onto <b>idle</b> workers (no unanswered share,
/// not benched, not failed): a worker still busy is no better a target. The late worker is then
/// benched for the rest of the round, and the new shares get a doubled deadline. With nobody idle
/// the round keeps waiting and reports the stall again after a doubled wait. So a deadline far
/// below the compute time costs a few stall reports, not a storm of re-plans: each deadline
/// re-plan benches a worker, and generations stop at <see cref="RoundPolicy.MaxGeneration"/>.</item>
/// <item>A round never holds more than <see cref="RoundPolicy.MaxSlots"/> shares; a re-plan that
/// would pass it fails the round instead of growing.</item>
/// </list>
/// </summary>
/// <typeparam name="TResult">What a worker returns for a share.</typeparam>
public sealed class WorkRound<TResult>
{
    private enum SlotStatus { Outstanding, Done, Abandoned }

    private sealed class Slot(int index, int[] ids, int worker, int generation, double sentAtMs, double deadlineMs)
    {
        public int Index { get; } = index;
        public int[] Ids { get; } = ids;
        public int Worker { get; } = worker;
        public int Generation { get; } = generation;
        public double SentAtMs { get; } = sentAtMs;
        public double DeadlineMs { get; set; } = deadlineMs;
        public int Stalls { get; set; }
        public SlotStatus Status { get; set; }
        /// <summary>The worker has replied for this share (a result or a failure) or is gone: it is no longer busy with it.</summary>
        public bool Answered { get; set; }
        public TResult? Result { get; set; }
        public double ArrivedAtMs { get; set; }
    }

    /// <summary>A share with its result, for the host's commit.</summary>
    public sealed record CompletedShare(int Slot, int Worker, int[] Ids, TResult Result, double SentAtMs, double ArrivedAtMs);

    private readonly int[] _ids;
    private readonly IWorkerPool _pool;
    private readonly RoundPolicy _policy;
    private readonly int _granule;
    private readonly List<Slot> _slots = [];
    private readonly HashSet<int> _failed = [];
    private readonly HashSet<int> _benched = [];
    private readonly HashSet<int> _gone = [];
    private readonly List<string> _failures = [];
    private readonly List<RoundCommand> _commands = [];
    private List<int> _waiting = [];
    private int _waitingGeneration;
    private bool _started;

    /// <param name="granule">Shares are made of whole runs of this many consecutive ids (the ghost batch under --bn-batch), and
    /// so is every re-plan: abandoned shares hand on whole runs, in order.</param>
    public WorkRound(int[] ids, IWorkerPool pool, RoundPolicy policy, int granule = 1)
    {
        if (ids.Length == 0) throw new ArgumentException("a round needs at least one id", nameof(ids));
        if (granule < 1 || ids.Length % granule != 0) throw new ArgumentException($"{ids.Length} ids are not whole units of {granule}", nameof(granule));
        _granule = granule;
        _ids = ids;
        _pool = pool;
        _policy = policy;
    }

    public RoundState State { get; private set; } = RoundState.Running;
    public int SlotCount => _slots.Count;
    /// <summary>How many times ids were moved from one share to others (deadline, loss, failure, waiting).</summary>
    public int Replans { get; private set; }
    public bool IsOver => State is RoundState.Complete or RoundState.Failed;

    /// <summary>When the earliest unfinished share passes its deadline; null when none is out.</summary>
    public double? NextDeadlineMs
    {
        get
        {
            double? next = null;
            foreach (var s in _slots)
                if (s.Status == SlotStatus.Outstanding && (next is null || s.DeadlineMs < next)) next = s.DeadlineMs;
            return IsOver ? null : next;
        }
    }

    /// <summary>The shares with results, in plan order (slot order), once the round is complete.</summary>
    public IReadOnlyList<CompletedShare> Completed =>
        State != RoundState.Complete ? throw new InvalidOperationException("the round is not complete")
        : _slots.Where(s => s.Status == SlotStatus.Done).Select(s => new CompletedShare(s.Index, s.Worker, s.Ids, s.Result!, s.SentAtMs, s.ArrivedAtMs)).ToList();

    /// <summary>
    /// The next result of the shares' plan order that is already in, walking from
    /// <paramref name="cursor"/> (advanced past it, and past abandoned shares): a host may use the
    /// leading results before the round completes (the coordinator sums gradients as they arrive).
    /// Returns default when the next share in plan order is still out. A result handed out here is
    /// normally in <see cref="Completed"/> at the same place; a host must still check, because a
    /// ring reduction can lose finished shares (<see cref="OnWorkerLost"/> with results).
    /// </summary>
    public TResult? NextInPlanOrder(ref int cursor)
    {
        while (cursor < _slots.Count && _slots[cursor].Status == SlotStatus.Abandoned) cursor++;
        if (cursor >= _slots.Count || _slots[cursor].Status != SlotStatus.Done) return default;
        return _slots[cursor++].Result;
    }

    /// <summary>When share <paramref name="slot"/> was sent (the host's clock), or null for a share the round does not have.</summary>
    public double? SentAtMs(int slot) => slot >= 0 && slot < _slots.Count ? _slots[slot].SentAtMs : null;

    /// <summary>
    /// The round's promise, checked: the ids of live shares plus the waiting ids are exactly the
    /// round's ids, each once. Cheap enough to run at every commit.
    /// </summary>
    public bool CoversIdsExactlyOnce()
    {
        // Sorted copies compared element by element: cheap enough for every step (a few µs for 1,000 ids).
        int count = _waiting.Count;
        foreach (var s in _slots)
            if (s.Status != SlotStatus.Abandoned) count += s.Ids.Length;
        if (count != _ids.Length) return false;
        // Pooled scratch: this runs at every commit, and two fresh arrays of the batch's size were most of a step's garbage.
        var coveredArray = System.Buffers.ArrayPool<int>.Shared.Rent(count);
        var expectedArray = System.Buffers.ArrayPool<int>.Shared.Rent(count);
        try
        {
            var covered = coveredArray.AsSpan(0, count);
            int at = 0;
            foreach (var s in _slots)
            {
                if (s.Status == SlotStatus.Abandoned) continue;
                s.Ids.CopyTo(covered[at..]);
                at += s.Ids.Length;
            }
            _waiting.CopyTo(coveredArray, at);
            var expected = expectedArray.AsSpan(0, count);
            _ids.CopyTo(expected);
            covered.Sort();
            expected.Sort();
            return covered.SequenceEqual(expected);
        }
        finally
        {
            System.Buffers.ArrayPool<int>.Shared.Return(coveredArray);
            System.Buffers.ArrayPool<int>.Shared.Return(expectedArray);
        }
    }

    public IReadOnlyList<RoundCommand> Start(double nowMs)
    {
        if (_started) throw new InvalidOperationException("the round has already started");
        _started = true;
        Distribute(_ids, fromWorker: null, reason: null, generation: 0, nowMs, PreferredTargets());
        return Flush();
    }

    public IReadOnlyList<RoundCommand> OnResult(int worker, int slot, int sampleCount, TResult result, double nowMs)
    {
        if (Refuse(worker, slot) is { } refusal) return Flush(refusal);
        var s = _slots[slot];
        if (sampleCount != s.Ids.Length)
            return FailWorker(worker, s, $"returned {sampleCount} samples for a share of {s.Ids.Length}", nowMs);
        s.Status = SlotStatus.Done;
        s.Answered = true;
        s.Result = result;
        s.ArrivedAtMs = nowMs;
        CompleteIfCovered();
        return Flush();
    }

    /// <summary>The worker could not compute the share (it reported an error, or its result was unusable).</summary>
    public IReadOnlyList<RoundCommand> OnFailed(int worker, int slot, string reason, double nowMs)
    {
        if (Refuse(worker, slot) is { } refusal) return Flush(refusal);
        return FailWorker(worker, _slots[slot], reason, nowMs);
    }

    /// <summary>The worker is gone (stopped, unreachable, left); the host has already removed it from the pool.</summary>
    /// <param name="withResults">
    /// Its finished shares are lost too: in a ring reduction a share's gradient sum stays on its
    /// worker until the step commits, so a worker lost before the commit takes its results with it.
    /// They move like unfinished ones, and a complete round runs again until they are back.
    /// </param>
    public IReadOnlyList<RoundCommand> OnWorkerLost(int worker, string reason, double nowMs, bool withResults = false)
    {
        if (State == RoundState.Failed || (IsOver && !withResults) || !_gone.Add(worker)) return Flush();
        var lost = new List<Slot>();
        foreach (var s in _slots.Where(s => s.Worker == worker))
        {
            s.Answered = true; // it will never answer
            if (s.Status == SlotStatus.Outstanding || (withResults && s.Status == SlotStatus.Done)) lost.Add(s);
        }
        if (lost.Count == 0) return Flush();
        if (State == RoundState.Complete) State = RoundState.Running;
        foreach (var s in lost) s.Result = default;
        Move(lost, worker, reason, nowMs);
        return Flush();
    }

    /// <summary>A worker became ready: ids waiting for a worker go out now.</summary>
    public IReadOnlyList<RoundCommand> OnWorkersChanged(double nowMs)
    {
        if (State != RoundState.WaitingForWorkers) return Flush();
        var targets = PreferredTargets();
        if (targets.Count == 0) return Flush();
        var ids = _waiting.ToArray();
        _waiting = [];
        State = RoundState.Running;
        Distribute(ids, fromWorker: null, reason: "waiting for workers", _waitingGeneration, nowMs, targets);
        return Flush();
    }

    /// <summary>Time has passed: shares past their deadline move onto idle workers, or are reported as stalled.</summary>
    public IReadOnlyList<RoundCommand> OnDeadline(double nowMs)
    {
        if (State != RoundState.Running) return Flush();
        var overdue = _slots.Where(s => s.Status == SlotStatus.Outstanding && s.DeadlineMs <= nowMs).ToList();
        if (overdue.Count == 0) return Flush();
        var late = overdue.Select(s => s.Worker).Distinct().ToArray();
        var movable = overdue.Where(s => s.Generation < _policy.MaxGeneration).ToList();
        var idle = IdleTargets();
        bool replan = movable.Count > 0 && idle.Count > 0 && _slots.Count + idle.Count <= _policy.MaxSlots;
        _commands.Add(new Stalled(late, replan));
        if (replan)
        {
            foreach (int worker in movable.Select(s => s.Worker).Distinct()) _benched.Add(worker);
            int generation = movable.Max(s => s.Generation) + 1;
            var moved = Abandon(movable);
            Distribute(moved.Ids, fromWorker: null, reason: "missed the step deadline", generation, nowMs, idle, moved.BySource);
        }
        foreach (var s in overdue.Where(s => s.Status == SlotStatus.Outstanding))
        {
            s.Stalls++;
            s.DeadlineMs = nowMs + _policy.WaitMs(s.Generation + s.Stalls);
        }
        return Flush();
    }

    // ---- internals ----

    /// <summary>Why a reply for <paramref name="slot"/> is not taken, or null; a reply for an abandoned share still frees its worker.</summary>
    private ResultRefused? Refuse(int worker, int slot)
    {
        if (IsOver) return new ResultRefused(worker, slot, "the round is over");
        if (slot < 0 || slot >= _slots.Count) return new ResultRefused(worker, slot, $"unknown share {slot}");
        var s = _slots[slot];
        if (s.Worker != worker) return new ResultRefused(worker, slot, "sent by a worker the share was not given to");
        if (s.Status == SlotStatus.Done) return new ResultRefused(worker, slot, "the share already has a result");
        if (s.Status == SlotStatus.Abandoned)
        {
            s.Answered = true;
            return new ResultRefused(worker, slot, "the share was re-planned after a fault");
        }
        return null;
    }

    private IReadOnlyList<RoundCommand> FailWorker(int worker, Slot failedSlot, string reason, double nowMs)
    {
        _failed.Add(worker);
        _failures.Add($"{reason} (share {failedSlot.Index})");
        failedSlot.Answered = true;
        var unfinished = _slots.Where(s => s.Worker == worker && s.Status == SlotStatus.Outstanding).ToList();
        Move(unfinished, worker, $"failed: {reason}", nowMs);
        return Flush();
    }

    /// <summary>
    /// Abandons <paramref name="slots"/> (all of one lost or failed worker) and gives their ids to other
    /// workers, or makes them wait. Not the new shares' fault: they keep the generation, and its deadline.
    /// </summary>
    private void Move(List<Slot> slots, int fromWorker, string reason, double nowMs)
    {
        if (slots.Count == 0) return;
        int generation = slots.Max(s => s.Generation);
        var moved = Abandon(slots);
        Distribute(moved.Ids, fromWorker, reason, generation, nowMs, PreferredTargets());
    }

    private (int[] Ids, Dictionary<int, int[]> BySource) Abandon(List<Slot> slots)
    {
        foreach (var s in slots) s.Status = SlotStatus.Abandoned;
        var bySource = slots.GroupBy(s => s.Worker).ToDictionary(g => g.Key, g => g.SelectMany(s => s.Ids).ToArray());
        return (slots.SelectMany(s => s.Ids).ToArray(), bySource);
    }

    /// <summary>
    /// Plans <paramref name="ids"/> over <paramref name="targets"/> by capacity and sends the shares;
    /// with no target the ids wait (or the round fails when every ready worker has failed it).
    /// </summary>
    /// <param name="reason">Why the ids move (reported as <see cref="Replanned"/>); null for the round's first plan.</param>
    private void Distribute(int[] ids, int? fromWorker, string? reason, int generation, double nowMs,
        IReadOnlyList<ReadyWorker> targets, Dictionary<int, int[]>? bySource = null)
    {
        if (reason is not null) Replans++;
        if (targets.Count == 0)
        {
            if (_pool.Ready.Any(w => !_gone.Contains(w.Key)))
            {
                Fail($"every ready worker failed this round: {string.Join("; ", _failures)}");
                return;
            }
            _waiting.AddRange(ids);
            _waitingGeneration = Math.Max(_waitingGeneration, generation);
            State = RoundState.WaitingForWorkers;
            if (reason is not null) ReportMoves(fromWorker, reason, ids, bySource, new Dictionary<int, int>());
            _commands.Add(new WaitForWorkers(_waiting.Count));
            return;
        }
        var plan = SharePlanner.Plan(ids, targets.Select(t => t.Capacity).ToArray(), _granule);
        if (_slots.Count + plan.Count > _policy.MaxSlots)
        {
            Fail($"re-planned past the limit of {_policy.MaxSlots} shares in one round (workers keep failing or leaving)");
            return;
        }
        var destination = reason is null ? null : new Dictionary<int, int>(ids.Length);
        foreach (var share in plan)
        {
            int worker = targets[share.WorkerIndex].Key;
            var slot = new Slot(_slots.Count, share.SampleIds, worker, generation, nowMs, nowMs + _policy.WaitMs(generation));
            _slots.Add(slot);
            if (destination is not null)
                foreach (int id in share.SampleIds) destination[id] = worker;
            _commands.Add(new SendWork(worker, slot.Index, share.SampleIds));
        }
        if (reason is not null) ReportMoves(fromWorker, reason, ids, bySource, destination!);
    }

    private void ReportMoves(int? fromWorker, string reason, int[] ids, Dictionary<int, int[]>? bySource, Dictionary<int, int> destination)
    {
        int[] To(int[] moved) => moved.Where(destination.ContainsKey).Select(id => destination[id]).Distinct().ToArray();
        if (bySource is null)
        {
            _commands.Add(new Replanned(fromWorker, reason, ids, To(ids)));
            return;
        }
        foreach (var (source, moved) in bySource) _commands.Add(new Replanned(source, reason, moved, To(moved)));
    }

    private void Fail(string reason)
    {
        State = RoundState.Failed;
        _commands.Add(new RoundFailed(reason));
    }

    private void CompleteIfCovered()
    {
        if (State != RoundState.Running) return;
        foreach (var s in _slots)
            if (s.Status == SlotStatus.Outstanding) return;
        State = RoundState.Complete;
    }

    private bool Busy(int worker)
    {
        foreach (var s in _slots)
            if (s.Worker == worker && !s.Answered) return true;
        return false;
    }

    private bool Usable(ReadyWorker w) => !_failed.Contains(w.Key) && !_gone.Contains(w.Key);

    /// <summary>Ready, usable, not benched and not busy with an unanswered share of this round.</summary>
    private List<ReadyWorker> IdleTargets() => IdleTargets(_pool.Ready);

    private List<ReadyWorker> IdleTargets(IReadOnlyList<ReadyWorker> ready)
    {
        var idle = new List<ReadyWorker>(ready.Count);
        foreach (var w in ready)
            if (Usable(w) && !_benched.Contains(w.Key) && !Busy(w.Key)) idle.Add(w);
        return idle;
    }

    /// <summary>For ids that must go somewhere now: idle workers first, then unbenched ones, then any usable one.</summary>
    private List<ReadyWorker> PreferredTargets()
    {
        var ready = _pool.Ready;
        var idle = IdleTargets(ready);
        if (idle.Count > 0) return idle;
        var usable = ready.Where(Usable).ToList();
        var unbenched = usable.Where(w => !_benched.Contains(w.Key)).ToList();
        return unbenched.Count > 0 ? unbenched : usable;
    }

    private IReadOnlyList<RoundCommand> Flush(RoundCommand? extra = null)
    {
        if (extra is not null) _commands.Add(extra);
        var commands = _commands.ToArray();
        _commands.Clear();
        return commands;
    }
}
