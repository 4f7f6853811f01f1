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
/// Plain logic with an injected clock; <see cref="UnreachableWorkerDowning"/> is the actor around it.
/// </summary>
public sealed class UnreachableWorkerRule<TMember>(TimeSpan after) where TMember : notnull
{
    public TimeSpan After { get; } = after;

    private readonly Dictionary<TMember, TimeSpan> _unreachableSince = [];

    /// <summary>A worker became unreachable at <paramref name="now"/> (a repeat keeps the first time).</summary>
    public void Unreachable(TMember worker, TimeSpan now) => _unreachableSince.TryAdd(worker, now);

    /// <summary>A worker is reachable again, or left the cluster: its clock stops.</summary>
    public void Forget(TMember worker) => _unreachableSince.Remove(worker);

    /// <summary>Workers to down now; each is returned once (it is forgotten here).</summary>
    /// <param name="reachableOthers">Members other than this node that it reaches now.</param>
    public IReadOnlyList<TMember> Due(TimeSpan now, int reachableOthers)
    {
        if (reachableOthers == 0) return [];
        var due = _unreachableSince.Where(kv => now - kv.Value >= After).Select(kv => kv.Key).ToList();
        foreach (var worker in due) _unreachableSince.Remove(worker);
        return due;
    }

    /// <summary>Workers whose clock is running.</summary>
    public IReadOnlyCollection<TMember> Watched => _unreachableSince.Keys;
}
