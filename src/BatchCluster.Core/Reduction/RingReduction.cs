namespace BatchCluster.Core.Reduction;

/// <summary>
/// The coordinator's view of one ring reduction (one generation of one step), as plain state:
/// who the members are, in ring order; whose shard norm has arrived (the step is decided when all
/// have: their sum is the squared norm of the batch's gradient sum); and which chunk of its owned
/// shard each member must send next. A member sends its norm first and then its chunks in order,
/// on one connection, so anything else is a protocol fault of that member. It also keeps, per
/// member, the squared norm of the values that actually arrived, so a member whose shard does not
/// match the norm it announced (a lie, or corruption that passed the checksum) is caught before
/// its step commits. No I/O, no buffers: the coordinator holds those.
/// </summary>
public sealed class RingReduction
{
    private readonly double?[] _norms;
    private readonly double[] _measured;
    /// <summary>Per member, where the next piece of its shard starts (its shard's end once complete).</summary>
    private readonly int[] _nextOffset;
    private int _normsIn;
    private int _membersDone;

    public RingReduction(long step, long version, int generation, long epoch, IReadOnlyList<int> members, RingLayout layout)
    {
        if (members.Count != layout.Members) throw new ArgumentException($"{members.Count} members for a layout of {layout.Members}");
        if (members.Distinct().Count() != members.Count) throw new ArgumentException("a worker appears twice in the ring");
        Step = step;
        Version = version;
        Generation = generation;
        Epoch = epoch;
        Members = members;
        Layout = layout;
        _norms = new double?[members.Count];
        _measured = new double[members.Count];
        _nextOffset = new int[members.Count];
        for (int k = 0; k < members.Count; k++) _nextOffset[k] = layout.Segment(layout.OwnedShard(k)).Offset;
    }

    public long Step { get; }
    public long Version { get; }
    public int Generation { get; }
    public long Epoch { get; }
    /// <summary>Worker keys in ring order: member k sends to member k+1.</summary>
    public IReadOnlyList<int> Members { get; }
    public RingLayout Layout { get; }

    /// <summary>Every norm is in: the step can be decided.</summary>
    public bool NormsComplete => _normsIn == Members.Count;
    /// <summary>The squared norm of the batch's gradient sum: the sum of the members' shard norms (valid once <see cref="NormsComplete"/>).</summary>
    public double SquaredNormSum => _norms.Sum(n => n ?? 0);
    /// <summary>Every member has sent every chunk of its shard.</summary>
    public bool ShardsComplete => _membersDone == Members.Count;

    /// <summary>The member's place in the ring, or −1.</summary>
    public int IndexOf(int worker)
    {
        for (int k = 0; k < Members.Count; k++)
            if (Members[k] == worker) return k;
        return -1;
    }

    /// <summary>A member's norm, sent ahead of its shard.</summary>
    /// <returns>Why it is refused (not a member, a second norm), or null.</returns>
    public string? OnNorm(int worker, double squaredNorm)
    {
        int k = IndexOf(worker);
        if (k < 0) return "a shard norm from a worker outside the ring";
        if (_norms[k] is not null) return "a second shard norm in one reduction";
        if (double.IsNaN(squaredNorm) || squaredNorm < 0) squaredNorm = double.PositiveInfinity; // non-finite either way: the step is skipped
        _norms[k] = squaredNorm;
        _normsIn++;
        return null;
    }

    /// <summary>The squared norm the member announced for its shard, or null before its norm arrived.</summary>
    public double? AnnouncedNorm(int worker) => IndexOf(worker) is var k and >= 0 ? _norms[k] : null;

    /// <summary>The chunk the member must send next, or null when its shard is complete.</summary>
    public ModelRange? ExpectedChunk(int worker)
    {
        int k = IndexOf(worker);
        if (k < 0) return null;
        var shard = Layout.Segment(Layout.OwnedShard(k));
        int offset = _nextOffset[k];
        return offset >= shard.End ? null : new ModelRange(offset, Math.Min(Layout.ChunkValues, shard.End - offset));
    }

    /// <summary>
    /// One chunk of a member's shard arrived (<paramref name="squaredNorm"/>: of its values, as the
    /// coordinator measured them). Returns why it is refused — not the chunk due, before the
    /// member's norm, or (on its last chunk) a shard whose values do not match its announced norm.
    /// </summary>
    public string? OnChunk(int worker, int offset, int count, double squaredNorm)
    {
        int k = IndexOf(worker);
        if (k < 0) return "a shard chunk from a worker outside the ring";
        if (_norms[k] is null) return "a shard chunk before the member's norm";
        if (ExpectedChunk(worker) is not { } due) return "a shard chunk after the member's whole shard";
        if (due.Offset != offset || due.Length != count)
            return $"values [{offset}, {offset + count}) where [{due.Offset}, {due.End}) were due";
        _measured[k] += squaredNorm;
        _nextOffset[k] = due.End;
        if (due.End < Layout.Segment(Layout.OwnedShard(k)).End) return null;
        _membersDone++;
        double announced = _norms[k]!.Value, measured = _measured[k];
        // The same float values summed in double in another order: agreement to ~1e-12 relative; 1e-6 leaves room and catches any real difference.
        bool agree = double.IsFinite(announced) && double.IsFinite(measured)
            ? Math.Abs(announced - measured) <= 1e-6 * Math.Max(announced, measured) + 1e-30
            : double.IsFinite(announced) == double.IsFinite(measured);
        return agree ? null : $"its shard's squared norm is {measured:G6}, not the {announced:G6} it announced";
    }
}
