using BatchCluster.Analysis.Logs;

namespace BatchCluster.EndToEnd.Tests.Analysis;

[Collection(TinyRunsCollection.Name)]
public sealed class EventLogReaderTests(TinyRuns runs) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("log-reader-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_real_log_reads_back_every_event_with_the_schema_properties()
    {
        var log = EventLogReader.Read(runs.LogOf("tiny-b32"));
        var summary = runs.Summaries["tiny-b32"];

        Assert.Equal(RunStatus.Completed, log.Status);
        Assert.Equal((0, 0), (log.BadLines, log.ForeignLines));
        Assert.Equal(("tiny-b32", "actors", 2, 32, "none"), (log.Info!.RunId, log.Info.Engine, log.Info.Workers, log.Info.GlobalBatch, log.Info.LrScaling));
        Assert.Equal(Enumerable.Range(0, TinyRuns.Steps).Select(i => (long)i), log.Steps.Select(s => s.Step));

        // MLP 784-256-10: 203,530 parameters go to each of the 2 shares, the 32 sample ids are split
        // between them, and 2 gradient sums come back: 4 bytes each, handed over in the process (schema 9),
        // none across a process boundary.
        const long parameters = 203_530;
        Assert.All(log.Steps, s => Assert.Equal(4 * (2 * parameters + 32) + 4 * 2 * parameters, s.BytesHandedOver));
        Assert.All(log.Steps, s => Assert.Equal(0, s.BytesMoved));
        Assert.All(log.Steps, s => Assert.True(s.PeakMemoryMb > 50, $"peak memory {s.PeakMemoryMb} MiB"));
        Assert.All(log.Steps, s => Assert.True(s.TransferMs >= 0 && s.ComputeMs > 0 && s.StepMs >= s.ComputeMs + s.TransferMs));

        // Before each validation the fixed training subset; the validation event carries the gap.
        var atStep20 = log.Evaluations.Where(e => e.Step == 20).ToList();
        Assert.Equal(["train", "validation"], atStep20.Select(e => e.Split));
        Assert.Equal(atStep20[0].Accuracy - atStep20[1].Accuracy, atStep20[1].GeneralizationGap, 12);
        Assert.Equal(["train", "validation", "test"], log.Evaluations.Where(e => e.Step == TinyRuns.Steps).Select(e => e.Split));

        // The workers as they joined, and (schema 7) which of them computed each share: both, every step, half each.
        Assert.Equal(2, log.Workers.Count);
        Assert.All(log.Workers, w => Assert.True(w.Device == "cpu" && w.Threads == 1 && w.MeasuredSamplesPerSecond > 0 && w.Transport == "in-process"));
        var ids = log.Workers.Select(w => w.WorkerId).Order().ToArray();
        Assert.All(log.Steps, s => Assert.Equal(ids, s.ShareWorkers!.Order()));
        Assert.All(log.Steps, s => Assert.Equal([16, 16], s.Shares!));
        Assert.All(log.Steps, s => Assert.True(s.ShareSamplesPerSecond!.All(v => v > 0)));
        var joined = Assert.Single(log.Segments);
        Assert.Equal(log.Info.StartedAt, joined.Start);
        Assert.Equal(["WorkerJoined", "WorkerJoined"], log.Marks.Select(m => m.Kind));
        Assert.Null(log.ResumedAtStart);

        var completion = log.Completion!;
        Assert.Equal(summary.GetProperty("val_accuracy").GetDouble(), completion.ValidationAccuracy);
        Assert.Equal(summary.GetProperty("test_accuracy").GetDouble(), completion.TestAccuracy);
        Assert.Equal(summary.GetProperty("generalization_gap").GetDouble(), completion.GeneralizationGap, 12);
    }

    [Fact]
    public void Truncated_and_garbage_lines_are_counted_and_everything_else_is_kept()
    {
        var lines = File.ReadAllLines(runs.LogOf("tiny-b128")).ToList();
        int firstStep = lines.FindIndex(l => l.Contains("\"EventType\":\"StepCompleted\""));
        // A step event that lost a property the schema requires (its loss).
        lines[firstStep + 3] = lines[firstStep + 3].Replace("\"Loss\":", "\"Lost\":");
        lines.Insert(firstStep + 1, "this is not JSON");
        lines.Insert(firstStep + 2, "[1, 2, 3]");
        lines.Insert(firstStep + 5, "{\"@t\":\"2026-11-27T00:00:00Z\",\"@mt\":\"from another library\"}");
        // The last line (RunCompleted) cut in half, as a crash mid-write leaves it.
        lines[^1] = lines[^1][..(lines[^1].Length / 2)];
        string damaged = Path.Combine(_dir, "events.clef");
        File.WriteAllLines(damaged, lines);

        var log = EventLogReader.Read(damaged);

        Assert.Equal(4, log.BadLines);
        Assert.Equal(1, log.ForeignLines);
        Assert.Equal(TinyRuns.Steps - 1, log.Steps.Count);
        Assert.Equal(RunStatus.Incomplete, log.Status); // the RunCompleted line is gone
        Assert.Equal(128, log.Info!.GlobalBatch);
        Assert.Equal(["train", "validation"], log.Evaluations.Where(e => e.Step == 20).Select(e => e.Split));
    }

    /// <summary>The bad-member events (schemas 10, 11 and 14) are on the run's time line, naming the worker by the coordinator's key and address.</summary>
    [Fact]
    public void Quarantines_releases_ignored_speed_claims_outliers_and_downed_nodes_are_marks_of_the_run()
    {
        var lines = File.ReadAllLines(runs.LogOf("tiny-b128")).ToList();
        int firstStep = lines.FindIndex(l => l.Contains("\"EventType\":\"StepCompleted\""));
        string at = "2026-12-04T00:00:00Z", actor = "akka.tcp://batchcluster@10.0.0.7:4054/user/worker";
        lines.Insert(firstStep + 1, $$"""{"@t":"{{at}}","EventType":"WorkerQuarantined","Step":1,"WorkerKey":3,"ActorAddress":"{{actor}}","ClaimedId":"x","Reason":"missed 1 step deadline(s) of 2 s in a row","Nth":1,"QuarantineLimit":3,"QuarantineSeconds":10}""");
        lines.Insert(firstStep + 2, $$"""{"@t":"{{at}}","EventType":"WorkerReleased","Step":4,"WorkerKey":3,"ActorAddress":"{{actor}}","Why":"its back-off passed","ReadyWorkers":2}""");
        lines.Insert(firstStep + 3, $$"""{"@t":"{{at}}","EventType":"SpeedClaimIgnored","Step":5,"WorkerKey":4,"ActorAddress":"{{actor}}","ClaimedSamplesPerSecond":1e9,"DeliveredSamplesPerSecond":20000,"ClaimFactor":100}""");
        lines.Insert(firstStep + 4, $$"""{"@t":"{{at}}","EventType":"ShareOutlier","Step":6,"Place":2,"Samples":40,"WorkerKey":4,"ActorAddress":"{{actor}}","MeanGradientNorm":1e6,"MedianMeanGradientNorm":1,"Ratio":1e6,"Allowed":10,"Action":"averaged in as computed (--outlier-policy log)"}""");
        lines.Insert(firstStep + 5, $$"""{"@t":"{{at}}","EventType":"WorkerNodeDowned","Step":7,"NodeAddress":"akka.tcp://batchcluster@10.0.0.7:4054","Reason":"its connection dropped 3 times within 10 s"}""");
        string path = Path.Combine(_dir, "events.clef");
        File.WriteAllLines(path, lines);

        var marks = EventLogReader.Read(path).Marks.Where(m => m.Kind is "WorkerQuarantined" or "WorkerReleased" or "SpeedClaimIgnored" or "ShareOutlier" or "WorkerNodeDowned").ToList();
        Assert.Equal(["WorkerQuarantined", "WorkerReleased", "SpeedClaimIgnored", "ShareOutlier", "WorkerNodeDowned"], marks.Select(m => m.Kind));
        Assert.Equal([1L, 4L, 5L, 6L, 7L], marks.Select(m => m.Step!.Value));
        Assert.Equal("worker node akka.tcp://batchcluster@10.0.0.7:4054 downed: its connection dropped 3 times within 10 s", marks[4].Detail);
        Assert.Equal($"worker #3 at {actor} quarantined for 10 s (1 of 3): missed 1 step deadline(s) of 2 s in a row", marks[0].Detail);
        Assert.Equal($"worker #3 at {actor} released (its back-off passed)", marks[1].Detail);
        Assert.Equal($"worker #4 at {actor} claims 1E+09 samples/s, delivers 2E+04", marks[2].Detail);
        Assert.Equal($"share 2 of worker #4 at {actor} 1E+06 × the median gradient norm: averaged in as computed (--outlier-policy log)", marks[3].Detail);
    }

    /// <summary>
    /// A coordinator rebuilt from the checkpoint at step 10 after step 12 (node mode) logs steps
    /// 10–12 again after ResumedFromCheckpoint: each step counts once, as finally committed. A run
    /// stopped on request ends with RunInterrupted and reads as interrupted.
    /// </summary>
    [Fact]
    public void Steps_repeated_after_a_recovery_count_once_and_an_interrupted_run_says_so()
    {
        var lines = File.ReadAllLines(runs.LogOf("tiny-b32")).ToList();
        int StepLine(int step) => lines.FindIndex(l => l.Contains("\"EventType\":\"StepCompleted\"") && l.Contains($"\"Step\":{step},"));
        var repeated = Enumerable.Range(10, 3).Select(i => lines[StepLine(i)].Replace("\"Loss\":", "\"Loss\":7.5e1,\"Ignored\":")).ToList();
        lines.InsertRange(StepLine(12) + 1,
            ["{\"@t\":\"2026-11-27T00:00:00Z\",\"EventType\":\"CoordinatorRecovering\",\"LastCommittedStep\":12}",
             "{\"@t\":\"2026-11-27T00:00:00Z\",\"EventType\":\"ResumedFromCheckpoint\",\"Step\":10,\"Epoch\":0,\"IndexInEpoch\":10}",
             .. repeated]);
        lines = lines.TakeWhile(l => !l.Contains("\"EventType\":\"RunCompleted\"")).ToList();
        lines.Add("{\"@t\":\"2026-11-27T00:00:01Z\",\"EventType\":\"RunInterrupted\",\"LastCommittedStep\":29,\"Checkpoint\":null}");
        string path = Path.Combine(_dir, "recovered.clef");
        File.WriteAllLines(path, lines);

        var log = EventLogReader.Read(path);
        Assert.Equal(Enumerable.Range(0, TinyRuns.Steps).Select(i => (long)i), log.Steps.Select(s => s.Step).Order());
        Assert.Equal([75.0, 75.0, 75.0], log.Steps.Where(s => s.Step is >= 10 and <= 12).Select(s => s.Loss));
        Assert.Equal(RunStatus.Interrupted, log.Status);
        Assert.Equal(29, log.InterruptedAfterStep);
        Assert.Equal(0, log.BadLines);
    }

    [Fact]
    public void An_empty_or_wholly_garbage_file_reads_as_an_incomplete_run_with_its_bad_lines_counted()
    {
        string path = Path.Combine(_dir, "garbage.clef");
        File.WriteAllText(path, "\0\0\0\n{\"EventType\":\n");
        var log = EventLogReader.Read(path);
        Assert.Equal((2, RunStatus.Incomplete, 0), (log.BadLines, log.Status, log.Steps.Count));
        Assert.Null(log.Info);
    }

    /// <summary>
    /// The audit fed analyze a 1.2 GB single line (6.6 GB RSS, OutOfMemoryException). A line longer
    /// than any event is counted as bad and read past without being held; the lines around it survive.
    /// </summary>
    [Fact]
    public void A_line_longer_than_any_event_is_skipped_without_holding_it()
    {
        var real = File.ReadAllLines(runs.LogOf("tiny-b32"));
        string path = Path.Combine(_dir, "events.clef");
        using (var writer = new StreamWriter(path))
        {
            writer.WriteLine(real[0]);
            var junk = new string('x', 1 << 20);
            for (int i = 0; i < 64; i++) writer.Write(junk); // one line of 64 Mi characters
            writer.WriteLine();
            foreach (var line in real.Skip(1)) writer.WriteLine(line);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var log = EventLogReader.Read(path);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(1, log.BadLines);
        Assert.Equal(RunStatus.Completed, log.Status);
        Assert.Equal(TinyRuns.Steps, log.Steps.Count);
        Assert.True(allocated < 48L << 20, $"reading allocated {allocated >> 20} MiB for a 64 Mi-character line");
    }

    [Theory]
    [InlineData("a\nb\r\n\nc", new[] { "a", "b", "", "c" })]
    [InlineData("one", new[] { "one" })]
    [InlineData("", new string[0])]
    public void Bounded_lines_split_like_read_line(string text, string[] expected)
    {
        Assert.Equal(expected, EventLogReader.BoundedLines(new StringReader(text)).ToArray());
    }
}
