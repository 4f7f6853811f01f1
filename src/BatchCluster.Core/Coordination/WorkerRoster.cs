namespace BatchCluster.Core.Coordination;

/// <summary>A worker as a round sees it: the coordinator's key for it and its share weight.</summary>
public readonly record struct ReadyWorker(int Key, double Capacity);

/// <summary>The workers a round may give work to right now, in a stable order (registration order).</summary>
public interface IWorkerPool
{
    IReadOnlyList<ReadyWorker> Ready { get; }
}

/// <summary>What a worker says about itself when it registers.</summary>
public sealed record WorkerDescription(string Id, string Address, string Device, int Threads);

/// <summary>
/// The workers a coordinator knows, each under a key that is never reused: a worker that leaves
/// and comes back (a node reachable again, a restarted process) gets a new key, so nothing of its
/// earlier life (a share it held, a late result) can be confused with its new one. A worker is
/// ready once its data and replica are loaded; only ready workers that are not quarantined get work. Shares are weighted by
/// the worker's torch threads, or (capacity split) by its measured samples/s.
/// </summary>
/// <typeparam name="THandle">How the host reaches a worker (an actor reference); opaque here.</typeparam>
public sealed class WorkerRoster<THandle> : IWorkerPool where THandle : notnull
{
    public sealed class Entry(int key, THandle handle, WorkerDescription description)
    {
        public int Key { get; } = key;
        public THandle Handle { get; } = handle;
        public WorkerDescription Description { get; } = description;
        public bool Ready { get; set; }
        /// <summary>Held out of the work for misbehaving (<see cref="WorkerQuarantine"/>): not counted as ready meanwhile.</summary>
        public bool Quarantined { get; set; }
        /// <summary>Ready and not quarantined: may get work.</summary>
        public bool Available => Ready && !Quarantined;
        /// <summary>Moving average of its measured samples/s (null until it reported one).</summary>
        public double? MeasuredSamplesPerSecond { get; set; }
    }

    /// <summary>Weight of updates to <see cref="Entry.MeasuredSamplesPerSecond"/>: about the last five shares count.</summary>
    public const double SpeedSmoothing = 0.3;

    /// <param name="split">Declared: shares by torch threads (bitwise reproducible). Capacity: by measured samples/s.</param>
    public WorkerRoster(Training.ShareSplit split = Training.ShareSplit.Declared) => Split = split;

    public Training.ShareSplit Split { get; }

    /// <summary>A worker's share weight: its threads, or with capacity shares its measured speed once there is one.</summary>
    public double CapacityOf(Entry e) =>
        Split == Training.ShareSplit.Capacity && e.MeasuredSamplesPerSecond is double speed && speed > 0 && double.IsFinite(speed)
            ? speed
            : Math.Max(1, e.Description.Threads);

    /// <summary>Folds a measured speed into the worker's moving average (at registration, and with every share it computes).</summary>
    public void MeasuredSpeed(int key, int samples, double computeMilliseconds)
    {
        if (samples <= 0 || !(computeMilliseconds > 0) || Find(key) is not { } entry) return;
        Measured(entry, samples / computeMilliseconds * 1000);
    }

    public void Measured(Entry entry, double samplesPerSecond)
    {
        if (!(samplesPerSecond > 0) || !double.IsFinite(samplesPerSecond)) return;
        entry.MeasuredSamplesPerSecond = entry.MeasuredSamplesPerSecond is double old
            ? old + SpeedSmoothing * (samplesPerSecond - old)
            : samplesPerSecond;
    }

    private readonly List<Entry> _entries = [];
    private readonly Dictionary<int, WorkerDescription> _descriptions = [];
    private int _nextKey;

    public Entry Add(THandle handle, WorkerDescription description)
    {
        var entry = new Entry(_nextKey++, handle, description);
        _entries.Add(entry);
        _descriptions[entry.Key] = description;
        return entry;
    }

    // Plain loops: these run for every frame and message a worker sends, and a lambda capturing its argument allocates per call.
    public Entry? Find(THandle handle)
    {
        foreach (var entry in _entries)
            if (EqualityComparer<THandle>.Default.Equals(entry.Handle, handle)) return entry;
        return null;
    }

    public Entry? Find(int key)
    {
        foreach (var entry in _entries)
            if (entry.Key == key) return entry;
        return null;
    }

    public void Remove(Entry entry) => _entries.Remove(entry);

    public IReadOnlyList<Entry> All => _entries;

    /// <summary>
    /// Ready workers, quarantined or not: the run's members. The --min-workers floor counts these, so that holding a
    /// bad member out of the work never pauses the run (a round with nobody available still waits for a worker).
    /// </summary>
    public int ReadyMembers => _entries.Count(e => e.Ready);

    /// <summary>Workers that may get work (ready, not quarantined).</summary>
    public int ReadyCount => _entries.Count(e => e.Available);

    public IReadOnlyList<ReadyWorker> Ready
    {
        get
        {
            var ready = new List<ReadyWorker>(_entries.Count);
            foreach (var e in _entries)
                if (e.Available) ready.Add(new ReadyWorker(e.Key, CapacityOf(e)));
            return ready;
        }
    }

    /// <summary>What the worker said about itself, also after it has left (its results may still be committed).</summary>
    public WorkerDescription DescriptionOf(int key) => _descriptions[key];

    /// <summary>The worker's id for logs, also after it has left.</summary>
    public string NameOf(int key) => _descriptions.TryGetValue(key, out var d) ? d.Id : $"worker #{key}";
}
