namespace BatchCluster.Core.Reduction;

/// <summary>A contiguous range of the flat model: values [Offset, Offset + Length).</summary>
public readonly record struct ModelRange(int Offset, int Length)
{
    public int End => Offset + Length;
}

/// <summary>
/// How a ring of N members cuts the model and who sends what when (docs/architecture.md, "The
/// ring"). The model is cut into N segments of nearly equal length (the first P mod N are one
/// value longer), each segment into chunks of at most <see cref="ChunkValues"/> values; frames
/// carry one chunk. Member k sends to member k+1 and receives from member k−1 (mod N):
/// <list type="bullet">
/// <item><b>Reduce-scatter</b>, rounds t = 0 … N−2: member k sends segment (k − t) mod N — its own
/// sum at t = 0, afterwards the segment it received in round t−1 with its own sum added — and
/// receives segment (k − 1 − t) mod N. After the last round member k holds the sum over all
/// members of segment (k + 1) mod N, its <see cref="OwnedShard"/>, added in ring order
/// starting at the segment's own member: ((s_j + s_{j+1}) + s_{j+2}) + …, the same order every step.</item>
/// <item>The owned shard goes to the coordinator chunk by chunk, and comes back updated chunk by
/// chunk: the coordinator updates each chunk as it lands, so its two directions overlap.</item>
/// <item><b>All-gather</b>, rounds t = 0 … N−2: member k sends segment (k + 1 − t) mod N (its
/// updated shard at t = 0, afterwards what it received in round t−1) and receives segment (k − t) mod N.</item>
/// </list>
/// Each member sends (N−1) segments each way of the ring plus its shard to the coordinator, and
/// receives as much: about (2N−1)/N of the model per direction; the coordinator P per direction.
/// Plain arithmetic, no I/O: both ends of every link compute the same frames and check them.
/// </summary>
public sealed class RingLayout
{
    public RingLayout(int parameterCount, int members, int chunkValues)
    {
        if (members < 1) throw new ArgumentOutOfRangeException(nameof(members), "a ring has at least one member");
        if (parameterCount < members) throw new ArgumentOutOfRangeException(nameof(parameterCount), $"a model of {parameterCount} values cannot be cut into {members} segments");
        if (chunkValues < 1) throw new ArgumentOutOfRangeException(nameof(chunkValues), "a chunk holds at least one value");
        ParameterCount = parameterCount;
        Members = members;
        ChunkValues = chunkValues;
    }

    public int ParameterCount { get; }
    public int Members { get; }
    public int ChunkValues { get; }

    /// <summary>Rounds of each phase: N − 1.</summary>
    public int Rounds => Members - 1;

    /// <summary>Segment <paramref name="index"/> (0 … N−1) of the model.</summary>
    public ModelRange Segment(int index)
    {
        if (index < 0 || index >= Members) throw new ArgumentOutOfRangeException(nameof(index));
        int basic = ParameterCount / Members, longer = ParameterCount % Members;
        int offset = index * basic + Math.Min(index, longer);
        return new ModelRange(offset, basic + (index < longer ? 1 : 0));
    }

    /// <summary>The chunks of a segment, in the order they travel.</summary>
    public IEnumerable<ModelRange> Chunks(int segment)
    {
        var range = Segment(segment);
        for (int offset = range.Offset; offset < range.End; offset += ChunkValues)
            yield return new ModelRange(offset, Math.Min(ChunkValues, range.End - offset));
    }

    /// <summary>How many chunks a segment has.</summary>
    public int ChunkCount(int segment) => (Segment(segment).Length + ChunkValues - 1) / ChunkValues;

    private int Wrap(int value) => ((value % Members) + Members) % Members;

    public int Downstream(int member) => Wrap(member + 1);
    public int Upstream(int member) => Wrap(member - 1);

    public int ReduceSendSegment(int member, int round) => Wrap(member - CheckRound(round));
    public int ReduceReceiveSegment(int member, int round) => Wrap(member - 1 - CheckRound(round));
    public int GatherSendSegment(int member, int round) => Wrap(member + 1 - CheckRound(round));
    public int GatherReceiveSegment(int member, int round) => Wrap(member - CheckRound(round));

    /// <summary>The segment whose whole sum member <paramref name="member"/> holds after the reduce-scatter, and whose update it receives from the coordinator.</summary>
    public int OwnedShard(int member) => Wrap(member + 1);

    /// <summary>The member that owns segment <paramref name="segment"/> after the reduce-scatter.</summary>
    public int OwnerOf(int segment) => Wrap(segment - 1);

    /// <summary>Values one member sends on its ring link per step (both phases; the shard to the coordinator not included).</summary>
    public long RingValuesSent(int member)
    {
        long values = 0;
        for (int t = 0; t < Rounds; t++) values += Segment(ReduceSendSegment(member, t)).Length + Segment(GatherSendSegment(member, t)).Length;
        return values;
    }

    private int CheckRound(int round) =>
        round >= 0 && round < Rounds ? round : throw new ArgumentOutOfRangeException(nameof(round), $"a ring of {Members} has rounds 0 … {Rounds - 1}");
}
