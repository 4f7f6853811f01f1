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
/// the worker's torch threads, or (capacity split) by its samples/s as the coordinator measured them (<see cref="MeasuredShare"/>).
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
        /// <summary>Moving average of its samples/s as the coordinator measured them with each share (null before it was timed).</summary>
        public double? MeasuredSamplesPerSecond { get; set; }
        /// <summary>Claims of compute time its round trips could not contain, in a row.</summary>
        public int ClaimsIgnoredInARow { get; set; }
        /// <summary>Shares whose round trip the coordinator has timed (the first is a warm-up and not counted).</summary>
        public int SharesTimed { get; set; }
    }

    /// <summary>Weight of updates to <see cref="Entry.MeasuredSamplesPerSecond"/>: about the last five shares count.</summary>
    public const double SpeedSmoothing = 0.3;

    /// <param name="split">Declared: shares by torch threads (bitwise reproducible). Capacity: by measured samples/s.</param>
    /// <param name="quarantine">Who is held out of the work (the host's decisions); none when null.</param>
    public WorkerRoster(Training.ShareSplit split = Training.ShareSplit.Declared, WorkerQuarantine? quarantine = null)
    {
        Split = split;
        _quarantine = quarantine;
    }

    private readonly WorkerQuarantine? _quarantine;

    /// <summary>Ready and not held out by the quarantine: may get work.</summary>
    public bool IsAvailable(Entry e) => e.Ready && _quarantine?.IsQuarantined(e.Key) != true;

    public Training.ShareSplit Split { get; }

    /// <summary>
    /// A worker's share weight: its threads, or with capacity shares its measured speed once timed
    /// (<see cref="MeasuredShare"/>), at least the fastest's / <see cref="SlowestWeightOfFastest"/>; before it is timed,
    /// the average of those that are (the threads while none is), so that it gets a share to be timed with.
    /// </summary>
    public double CapacityOf(Entry e)
    {
        if (Split != Training.ShareSplit.Capacity) return Math.Max(1, e.Description.Threads);
        double fastest = 0, sum = 0;
        int measured = 0;
        foreach (var other in _entries)
            if (IsAvailable(other) && other.MeasuredSamplesPerSecond is double s && s > 0 && double.IsFinite(s))
            {
                fastest = Math.Max(fastest, s);
                sum += s;
                measured++;
            }
        if (e.MeasuredSamplesPerSecond is not double speed || !(speed > 0) || !double.IsFinite(speed))
            return measured > 0 ? sum / measured : Math.Max(1, e.Description.Threads); // not timed yet: the average, to be timed
        return Math.Max(speed, fastest / SlowestWeightOfFastest);
    }

    /// <summary>
    /// How far a worker's claimed speed (its samples over the compute time it reports) may exceed the speed its round
    /// trip delivered, as the coordinator timed it, and still be believed. An honest worker's compute is part of its
    /// round trip (the share's way out, its queue and compute, the result's way back), so it claims at least what it
    /// delivers: about as much in this process, several times more in another, where the transfer of parameters and
    /// gradient takes most of a small share's round trip. A claim beyond 100 × is taken as false.
    /// </summary>
    public const double ClaimFactor = 100;

    /// <summary>A worker's share weight is at least the fastest's over this: every worker keeps getting samples, so a slow
    /// measurement (a pause, a warm-up) is measured again at the next step instead of starving the worker for good.</summary>
    public const double SlowestWeightOfFastest = 16;

    /// <summary>
    /// Folds one share into the worker's moving average of samples/s: the speed its reported compute time claims
    /// (it balances compute exactly, whatever the transfer costs), when the round trip the coordinator timed
    /// (<paramref name="roundTripMilliseconds"/>) makes that claim possible within <see cref="ClaimFactor"/>; else the
    /// speed the round trip delivered. So a worker cannot draw more work by its reports than <see cref="ClaimFactor"/>
    /// × what it delivers, and one claiming 10⁹ samples/s gets what its round trips earn. A worker's first share is not
    /// timed: its round trip carried the whole model for the first time and its first compute warms up.
    /// </summary>
    /// <returns>Whether this made <see cref="ClaimsIgnoredToReport"/> ignored claims in a row (the host logs it).</returns>
    public bool MeasuredShare(int key, int samples, double computeMilliseconds, double roundTripMilliseconds)
    {
        if (samples <= 0 || !(roundTripMilliseconds > 0) || !double.IsFinite(roundTripMilliseconds) || Find(key) is not { } entry) return false;
        if (entry.SharesTimed++ == 0) return false;
        bool believable = computeMilliseconds * ClaimFactor >= roundTripMilliseconds && double.IsFinite(computeMilliseconds); // false for 0 and NaN too
        Measured(entry, samples / (believable ? computeMilliseconds : roundTripMilliseconds) * 1000);
        entry.ClaimsIgnoredInARow = believable ? 0 : entry.ClaimsIgnoredInARow + 1;
        return entry.ClaimsIgnoredInARow == ClaimsIgnoredToReport;
    }

    /// <summary>Ignored claims in a row before the host reports the worker: one round trip held up by a pause is not a lie.</summary>
    public const int ClaimsIgnoredToReport = 3;

    private static double Smoothed(double? old, double sample) => old is double o ? o + SpeedSmoothing * (sample - o) : sample;

    public void Measured(Entry entry, double samplesPerSecond)
    {
        if (!(samplesPerSecond > 0) || !double.IsFinite(samplesPerSecond)) return;
        entry.MeasuredSamplesPerSecond = Smoothed(entry.MeasuredSamplesPerSecond, samplesPerSecond);
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
    public int ReadyMembers
    {
        get
        {
            int ready = 0;
            foreach (var e in _entries) if (e.Ready) ready++;
            return ready;
        }
    }

    /// <summary>Workers that may get work (ready, not quarantined).</summary>
    public int ReadyCount
    {
        get
        {
            int available = 0; // a loop, not Count(IsAvailable): that would make a delegate at every call, and it runs every step
            foreach (var e in _entries) if (IsAvailable(e)) available++;
            return available;
        }
    }

    public IReadOnlyList<ReadyWorker> Ready
    {
        get
        {
            var ready = new List<ReadyWorker>(_entries.Count);
            foreach (var e in _entries)
                if (IsAvailable(e)) ready.Add(new ReadyWorker(e.Key, CapacityOf(e)));
            return ready;
        }
    }

    /// <summary>What the worker said about itself, also after it has left (its results may still be committed).</summary>
    public WorkerDescription DescriptionOf(int key) => _descriptions[key];

    /// <summary>The worker's id for logs, also after it has left.</summary>
    public string NameOf(int key) => _descriptions.TryGetValue(key, out var d) ? d.Id : $"worker #{key}";
}
