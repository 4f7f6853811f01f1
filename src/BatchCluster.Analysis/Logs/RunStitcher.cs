namespace BatchCluster.Analysis.Logs;

/// <summary>
/// Makes a run resumed from a checkpoint one run with the run it continues. A log whose
/// ResumedFromCheckpoint comes before its first step (<c>train --resume</c>, a standby coordinator)
/// continues the log that wrote that checkpoint: the CheckpointWritten with the same file name
/// (it names the configuration's fingerprint and the step) and the same step, written before the
/// continuation started; where several logs wrote such a file (runs of one configuration with other
/// checkpoint directories), the one with the same path as logged, then the latest. The stitched run keeps the first log's identity and configuration, its
/// steps before the resume step and evaluations up to it (the test set's at its end aside), then everything of the continuation;
/// how it ended is the continuation's. Chains (resumed twice) stitch in order. When two logs resume
/// from the same checkpoint, only the first to start continues the run; the other stays a run of its own.
/// </summary>
public static class RunStitcher
{
    public static IReadOnlyList<RunLog> Stitch(IReadOnlyList<RunLog> logs)
    {
        var continuationOf = new Dictionary<RunLog, RunLog>(ReferenceEqualityComparer.Instance);
        var continued = new HashSet<RunLog>(ReferenceEqualityComparer.Instance);
        foreach (var log in logs.Where(l => l.ResumedAtStart is not null).OrderBy(l => l.Segments.FirstOrDefault()?.Start ?? DateTimeOffset.MaxValue))
        {
            var resume = log.ResumedAtStart!;
            var source = logs
                .Where(other => !ReferenceEquals(other, log) && !continued.Contains(other))
                .Select(other => (Log: other, Written: other.Checkpoints.LastOrDefault(c => Matches(c, resume))))
                .Where(c => c.Written is not null && c.Written.At <= resume.At)
                .OrderByDescending(c => c.Written!.Path == resume.Path) // the same path as logged beats the same file name elsewhere
                .ThenByDescending(c => c.Written!.At)
                .Select(c => c.Log).FirstOrDefault();
            if (source is null || FormsCycle(source, log, continuationOf)) continue;
            continuationOf[source] = log;
            continued.Add(source);
        }
        var isContinuation = new HashSet<RunLog>(continuationOf.Values, ReferenceEqualityComparer.Instance);
        var stitched = new List<RunLog>();
        foreach (var first in logs.Where(l => !isContinuation.Contains(l)))
        {
            var run = first;
            for (var next = first; continuationOf.TryGetValue(next, out var continuation); next = continuation)
                run = Join(run, continuation);
            stitched.Add(run);
        }
        return stitched;
    }

    private static bool Matches(CheckpointMark written, CheckpointMark resumed) =>
        written.Step == resumed.Step && string.Equals(Path.GetFileName(written.Path), Path.GetFileName(resumed.Path), StringComparison.Ordinal);

    /// <summary>Whether <paramref name="source"/> already continues (directly or not) <paramref name="continuation"/>.</summary>
    private static bool FormsCycle(RunLog source, RunLog continuation, Dictionary<RunLog, RunLog> continuationOf)
    {
        for (var next = continuation; continuationOf.TryGetValue(next, out var after); next = after)
            if (ReferenceEquals(after, source)) return true;
        return false;
    }

    /// <summary>The run <paramref name="earlier"/> as continued by <paramref name="later"/> from its resume step.</summary>
    private static RunLog Join(RunLog earlier, RunLog later)
    {
        long resumeStep = later.ResumedAtStart!.Step;
        return new RunLog(
            earlier.Path,
            earlier.Info ?? later.Info,
            earlier.Steps.Where(s => s.Step < resumeStep).Concat(later.Steps).ToList(),
            earlier.Evaluations.Where(e => e.Step <= resumeStep && e.Split != "test").Concat(later.Evaluations).ToList(),
            later.Completion, later.FailureMessage, earlier.BadLines + later.BadLines, earlier.ForeignLines + later.ForeignLines, later.InterruptedAfterStep)
        {
            Workers = [.. earlier.Workers, .. later.Workers],
            Marks = [.. earlier.Marks, .. later.Marks],
            Checkpoints = [.. earlier.Checkpoints, .. later.Checkpoints],
            ResumedAtStart = earlier.ResumedAtStart,
            Segments = [.. earlier.Segments, .. later.Segments],
        };
    }
}
