namespace BatchCluster.Analysis.Logs;

/// <summary>
/// A run's training time: seconds from the start of its first step (its log time less its duration),
/// not counting the time between the segments of a resumed run (nobody's training time). Built once
/// per log (finding the first step reads every step), then asked per point.
/// </summary>
public sealed class TrainingClock
{
    private readonly DateTimeOffset? _start;
    private readonly (DateTimeOffset Resumed, double GapSeconds)[] _gaps;

    private TrainingClock(DateTimeOffset? start, (DateTimeOffset, double)[] gaps)
    {
        _start = start;
        _gaps = gaps;
    }

    public static TrainingClock Of(RunLog log)
    {
        var first = log.Steps.MinBy(s => s.Step);
        var gaps = log.Segments.Zip(log.Segments.Skip(1), (before, after) => (after.Start, (after.Start - before.End).TotalSeconds))
            .Where(g => g.Item2 > 0).ToArray();
        return new TrainingClock(first is null ? null : first.At - TimeSpan.FromMilliseconds(first.StepMs), gaps);
    }

    /// <summary>Training seconds at <paramref name="at"/> (negative before the first step); NaN for a log without steps.</summary>
    public double Seconds(DateTimeOffset at)
    {
        if (_start is not DateTimeOffset start) return double.NaN;
        double seconds = (at - start).TotalSeconds;
        foreach (var (resumed, gap) in _gaps)
            if (resumed <= at) seconds -= gap;
        return seconds;
    }
}
