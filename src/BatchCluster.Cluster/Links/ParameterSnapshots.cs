using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// The coordinator's parameter snapshots: one array per parameter version, copied from the live
/// parameters and never written while a worker may still read it (the ownership rule in
/// <see cref="TrainingProtocol"/>). A fresh 0.8 MB array per step cost 0.3 ms of large-object
/// allocation on the coordinator's critical path, so arrays are recycled, but only when provably
/// free:
/// <list type="bullet">
/// <item>every request that carried the snapshot to a worker in this process has been answered
/// (a result or a failure report; every request gets exactly one), or that worker is gone; a
/// worker answers its requests in the order it got them, so an answer at a later version also
/// proves the earlier snapshots were read;</item>
/// <item>workers in other processes never read this array: the transport copies the tensor
/// before <see cref="TensorTransport.Tell"/> returns, so they are not counted.</item>
/// </list>
/// A worker that never answers keeps its snapshot's array for good: it is forgotten here and left
/// to the garbage collector, never reused.
/// </summary>
public sealed class ParameterSnapshots
{
    /// <summary>How many earlier snapshots are remembered while readers still hold them.</summary>
    private const int MaxRemembered = 8;

    private sealed class Entry(TrainingProtocol.ParameterSnapshot snapshot, float[] array)
    {
        public TrainingProtocol.ParameterSnapshot Snapshot { get; } = snapshot;
        public float[] Array { get; } = array;
        public long Version => Snapshot.Version;
        /// <summary>Unanswered requests that carried this snapshot, per local worker.</summary>
        public Dictionary<int, int> Readers { get; } = [];
    }

    private readonly List<Entry> _entries = []; // oldest first; the last one is the current snapshot

    /// <summary>How many arrays were allocated (the rest were recycled); for tests and benchmarks.</summary>
    public int Allocated { get; private set; }

    /// <summary>The snapshot of <paramref name="version"/>, made from <paramref name="parameters"/> the first time it is asked for.</summary>
    public TrainingProtocol.ParameterSnapshot At(long version, ReadOnlySpan<float> parameters)
    {
        if (_entries.Count > 0 && _entries[^1].Version == version) return _entries[^1].Snapshot;
        var array = TakeFree(parameters.Length);
        if (array is null)
        {
            array = GC.AllocateUninitializedArray<float>(parameters.Length);
            Allocated++;
        }
        parameters.CopyTo(array);
        var entry = new Entry(new TrainingProtocol.ParameterSnapshot(version, array), array);
        _entries.Add(entry);
        if (_entries.Count > MaxRemembered) _entries.RemoveAt(0); // still held by a silent reader: never reused
        return entry.Snapshot;
    }

    /// <summary>A request carrying the current snapshot (the last one <see cref="At"/> made) went to <paramref name="worker"/> in this process.</summary>
    public void Lent(int worker)
    {
        if (_entries.Count == 0) throw new InvalidOperationException("no snapshot was made");
        var readers = _entries[^1].Readers;
        readers[worker] = readers.GetValueOrDefault(worker) + 1;
    }

    /// <summary><paramref name="worker"/> answered one request made at <paramref name="version"/>.</summary>
    public void Answered(int worker, long version)
    {
        foreach (var entry in _entries)
        {
            if (entry.Version < version) entry.Readers.Remove(worker); // read before this answer was sent
            else if (entry.Version == version && entry.Readers.TryGetValue(worker, out int open))
            {
                if (open <= 1) entry.Readers.Remove(worker);
                else entry.Readers[worker] = open - 1;
            }
        }
    }

    /// <summary>The worker is gone (stopped, or left after answering what it had): it reads nothing more.</summary>
    public void Gone(int worker)
    {
        foreach (var entry in _entries) entry.Readers.Remove(worker);
    }

    private float[]? TakeFree(int length)
    {
        for (int i = 0; i < _entries.Count - 1; i++) // never the current one
        {
            var entry = _entries[i];
            if (entry.Readers.Count > 0 || entry.Array.Length != length) continue;
            _entries.RemoveAt(i);
            return entry.Array;
        }
        return null;
    }
}
