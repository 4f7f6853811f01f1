namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// When the coordinator's node downs a worker itself instead of leaving it to the split-brain resolver: a worker that has
/// been unreachable (to any member) for <see cref="After"/> without a break, while this node still reaches some other
/// member. Why: a member that breaks its own link to the coordinator (an oversized frame makes the coordinator's transport
/// drop the association; a one-sided network fault does the same) leaves the two of them each finding the other
/// unreachable while a third node reaches both. The resolver's rule for such "indirectly connected" nodes downs both
/// ends, the coordinator included, so one bad member could end a run. A star has no use for a worker that cannot reach
/// its coordinator; downing it first (it may join again as a fresh member) leaves the resolver nothing to decide about the
/// coordinator. <see cref="After"/> is shorter than the resolver's stable-after (cluster.hocon), with room for the down
/// to reach every node by gossip, and longer than a thawed or briefly stalled worker needs to be reachable again. A node
/// that reaches no other member is itself the one cut off: it downs nobody (the resolver's down-if-alone decides).
/// <para>A worker whose connection to this node dropped <see cref="DropsToDown"/> times within <see cref="DropWindow"/> is
/// due at once, unreachable or not: a link that keeps breaking. The unreachable clock alone lost the race once in CI: the
/// bad member reconnected every second, so this node marked it unreachable only 10 s after its first oversized frame,
/// while the bad member had found the coordinator unreachable much earlier — and the resolver counts from the first
/// observation anywhere. A crashed or killed worker drops its connection once; one that keeps reconnecting to break it
/// again is the case this rule exists for.</para>
/// Plain logic with an injected clock; <see cref="UnreachableWorkerDowning"/> is the actor around it.
/// </summary>
public sealed class UnreachableWorkerRule<TMember>(TimeSpan after) where TMember : notnull
{
    /// <summary>Dropped connections within <see cref="DropWindow"/> that make a worker due at once.</summary>
    public const int DropsToDown = 3;
    public static readonly TimeSpan DropWindow = TimeSpan.FromSeconds(10);

    public TimeSpan After { get; } = after;

    private readonly Dictionary<TMember, TimeSpan> _unreachableSince = [];
    private readonly Dictionary<TMember, Queue<TimeSpan>> _drops = [];

    /// <summary>A worker became unreachable at <paramref name="now"/> (a repeat keeps the first time).</summary>
    public void Unreachable(TMember worker, TimeSpan now) => _unreachableSince.TryAdd(worker, now);

    /// <summary>A worker is reachable again: its unreachable clock stops (its dropped connections still count).</summary>
    public void Reachable(TMember worker) => _unreachableSince.Remove(worker);

    /// <summary>This node's connection to a worker dropped at <paramref name="now"/>; returns how many did within the window.</summary>
    public int Dropped(TMember worker, TimeSpan now)
    {
        if (!_drops.TryGetValue(worker, out var times)) _drops[worker] = times = new Queue<TimeSpan>();
        times.Enqueue(now);
        while (now - times.Peek() > DropWindow) times.Dequeue();
        return times.Count;
    }

    /// <summary>A worker left the cluster or was downed: everything about it is forgotten.</summary>
    public void Forget(TMember worker)
    {
        _unreachableSince.Remove(worker);
        _drops.Remove(worker);
    }

    /// <summary>A worker to down, and why in words (for the log and the run's <c>WorkerNodeDowned</c>).</summary>
    public readonly record struct Decision(TMember Worker, string Reason);

    /// <summary>Workers to down now; each is returned once (it is forgotten here).</summary>
    /// <param name="reachableOthers">Members other than this node that it reaches now.</param>
    public IReadOnlyList<Decision> Due(TimeSpan now, int reachableOthers)
    {
        if (reachableOthers == 0) return [];
        var due = new List<Decision>();
        foreach (var (worker, since) in _unreachableSince)
            if (now - since >= After) due.Add(new(worker, $"unreachable for {After.TotalSeconds:G3} s"));
        foreach (var (worker, times) in _drops)
            if (times.Count(t => now - t <= DropWindow) >= DropsToDown && due.All(d => !Equals(d.Worker, worker)))
                due.Add(new(worker, $"its connection dropped {DropsToDown} times within {DropWindow.TotalSeconds:G3} s"));
        foreach (var decision in due) Forget(decision.Worker);
        return due;
    }

    /// <summary>Workers whose unreachable clock is running or whose dropped connections are counted.</summary>
    public IReadOnlyCollection<TMember> Watched => _unreachableSince.Keys.Union(_drops.Keys).ToList();
}
