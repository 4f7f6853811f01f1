namespace BatchCluster.Core.Coordination;

/// <summary>
/// How a coordinator treats a worker that misbehaves (docs/robustness.md, "Quarantine").
/// </summary>
/// <param name="MissedDeadlines">Deadlines a worker may miss in a row before it is quarantined (a result in time resets the count).</param>
/// <param name="BackoffMs">The first quarantine's length; every further one doubles it.</param>
/// <param name="Limit">Quarantines a worker may serve; the next offence removes it from the run for good (its node is downed).</param>
public sealed record QuarantinePolicy(int MissedDeadlines = 1, double BackoffMs = 10_000, int Limit = 3)
{
    public int MissedDeadlines { get; } = MissedDeadlines >= 1 ? MissedDeadlines : throw new ArgumentOutOfRangeException(nameof(MissedDeadlines), "at least one missed deadline");
    public double BackoffMs { get; } = BackoffMs > 0 && double.IsFinite(BackoffMs) ? BackoffMs : throw new ArgumentOutOfRangeException(nameof(BackoffMs), "a positive back-off");
    public int Limit { get; } = Limit >= 0 ? Limit : throw new ArgumentOutOfRangeException(nameof(Limit), "zero or more quarantines");

    /// <summary>How long the <paramref name="nth"/> quarantine (1-based) lasts: the back-off doubled on every repeat.</summary>
    public double LengthMs(int nth) => BackoffMs * Math.Pow(2, Math.Clamp(nth - 1, 0, 30));
}

/// <summary>What <see cref="WorkerQuarantine.Quarantine"/> decided.</summary>
/// <param name="Nth">Which quarantine of this worker this is (1-based).</param>
/// <param name="UntilMs">When it ends (a time of the host's clock); never (+∞) when <paramref name="Expel"/>.</param>
/// <param name="Expel">The worker served its <see cref="QuarantinePolicy.Limit"/>: remove it from the run instead (it stays
/// held out until the host forgets it).</param>
public readonly record struct QuarantineDecision(int Nth, double UntilMs, bool Expel);

/// <summary>
/// Which workers are held out of the work, for how long, and who has offended too often. Plain
/// code with no clock: the host passes the time. A worker is quarantined for a share that cannot
/// be right (non-finite when the others' are finite, impossible figures) or for missing
/// <see cref="QuarantinePolicy.MissedDeadlines"/> deadlines in a row; it gets no work until its
/// back-off has passed, and the back-off doubles each time. After <see cref="QuarantinePolicy.Limit"/>
/// quarantines the next offence expels it. Keys are the roster's, never reused, so a worker that
/// registers again starts clean only as a new worker (the host keeps expelled ones out).
/// </summary>
public sealed class WorkerQuarantine(QuarantinePolicy policy)
{
    private sealed class Record
    {
        public int MissesInARow;
        public int Quarantines;
        public double? UntilMs;
    }

    private readonly Dictionary<int, Record> _records = [];

    public QuarantinePolicy Policy { get; } = policy;

    public bool IsQuarantined(int key) => _records.TryGetValue(key, out var r) && r.UntilMs is not null;

    /// <summary>How many times the worker has been quarantined so far.</summary>
    public int QuarantinesOf(int key) => _records.TryGetValue(key, out var r) ? r.Quarantines : 0;

    /// <summary>The worker answered in time: its missed deadlines no longer count.</summary>
    public void Answered(int key)
    {
        if (_records.TryGetValue(key, out var r)) r.MissesInARow = 0;
    }

    /// <summary>The worker missed a deadline.</summary>
    /// <returns>Whether that makes <see cref="QuarantinePolicy.MissedDeadlines"/> in a row (the host quarantines it).</returns>
    public bool MissedDeadline(int key)
    {
        var r = RecordOf(key);
        return ++r.MissesInARow >= Policy.MissedDeadlines;
    }

    /// <summary>Holds the worker out of the work from <paramref name="nowMs"/> on, or says to expel it.</summary>
    public QuarantineDecision Quarantine(int key, double nowMs)
    {
        var r = RecordOf(key);
        r.MissesInARow = 0;
        int nth = ++r.Quarantines;
        if (nth > Policy.Limit)
        {
            r.UntilMs = double.PositiveInfinity; // held out for good: the host removes it from the run and then forgets it
            return new QuarantineDecision(nth, r.UntilMs.Value, Expel: true);
        }
        r.UntilMs = nowMs + Policy.LengthMs(nth);
        return new QuarantineDecision(nth, r.UntilMs.Value, Expel: false);
    }

    /// <summary>When the earliest quarantine ends; null when nobody is quarantined.</summary>
    public double? NextReleaseMs
    {
        get
        {
            double? next = null;
            foreach (var r in _records.Values)
                if (r.UntilMs is double until && double.IsFinite(until) && (next is null || until < next)) next = until;
            return next;
        }
    }

    /// <summary>Ends every quarantine whose back-off has passed at <paramref name="nowMs"/>; the workers it frees, in key order.</summary>
    public IReadOnlyList<int> Release(double nowMs)
    {
        List<int>? freed = null; // the host asks at every step: nothing allocated when nobody is due
        foreach (var (key, r) in _records)
            if (r.UntilMs is double until && until <= nowMs)
            {
                r.UntilMs = null;
                (freed ??= []).Add(key);
            }
        if (freed is null) return [];
        freed.Sort();
        return freed;
    }

    /// <summary>
    /// The worker's last quarantine was a mistake (the shares it was blamed for were as bad when others computed
    /// them: the fault followed the model): it ends now and does not count.
    /// </summary>
    /// <returns>Whether the worker was quarantined.</returns>
    public bool Pardon(int key)
    {
        if (!_records.TryGetValue(key, out var r) || r.UntilMs is not double until || !double.IsFinite(until)) return false;
        r.UntilMs = null;
        r.Quarantines--;
        return true;
    }

    /// <summary>The worker left the run: nothing of it is kept.</summary>
    public void Forget(int key) => _records.Remove(key);

    private Record RecordOf(int key)
    {
        if (!_records.TryGetValue(key, out var r)) _records[key] = r = new Record();
        return r;
    }
}
