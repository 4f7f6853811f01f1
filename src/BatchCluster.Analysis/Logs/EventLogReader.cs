using System.Globalization;
using System.Text.Json;

namespace BatchCluster.Analysis.Logs;

/// <summary>
/// Reads an event log (CLEF, one JSON object per line; docs/log-schema.md) into a <see cref="RunLog"/>.
/// It never throws on content: a line that is not a JSON object, or a schema event without a
/// property the schema requires, is counted in <see cref="RunLog.BadLines"/> and skipped, so a
/// log cut short by a crash or a full disk still yields everything before the damage.
/// A coordinator rebuilt from a checkpoint within the same run (node mode) repeats the steps after
/// that checkpoint: a ResumedFromCheckpoint event in the middle of a log discards what was logged
/// for the steps it goes back over, so each step is counted once, as it was finally committed.
/// </summary>
public static class EventLogReader
{
    public static RunLog Read(string path)
    {
        using var reader = new StreamReader(path);
        return Read(reader, path);
    }

    /// <summary>No event of ours comes near this (a StepCompleted line is ~2 KB); a longer line is garbage.</summary>
    public const int MaxLineChars = 1 << 20;

    /// <summary>
    /// The lines of <paramref name="reader"/>, each at most <see cref="MaxLineChars"/> long; a longer one
    /// comes back as null, and its characters are read past, never held (a 1.2 GB line once took 6.6 GB).
    /// </summary>
    public static IEnumerable<string?> BoundedLines(TextReader reader)
    {
        var line = new System.Text.StringBuilder();
        bool overlong = false;
        var buffer = new char[1 << 16];
        int count;
        while ((count = reader.Read(buffer, 0, buffer.Length)) > 0)
        {
            var chunk = buffer.AsMemory(0, count);
            while (!chunk.IsEmpty)
            {
                int end = chunk.Span.IndexOf('\n');
                var part = end < 0 ? chunk : chunk[..end];
                if (!overlong && line.Length + part.Length > MaxLineChars)
                {
                    overlong = true;
                    line.Clear();
                }
                if (!overlong) line.Append(part);
                if (end < 0) break;
                yield return overlong ? null : line.ToString().TrimEnd('\r');
                line.Clear();
                overlong = false;
                chunk = chunk[(end + 1)..];
            }
        }
        if (overlong) yield return null;
        else if (line.Length > 0) yield return line.ToString().TrimEnd('\r');
    }

    public static RunLog Read(TextReader reader, string path)
    {
        RunInfo? info = null;
        var steps = new List<StepPoint>();
        var evaluations = new List<EvalPoint>();
        RunCompletion? completion = null;
        string? failure = null;
        long? interruptedAfter = null;
        int bad = 0, foreign = 0;
        var workers = new List<WorkerJoin>();
        var marks = new List<RunMark>();
        var checkpoints = new List<CheckpointMark>();
        CheckpointMark? resumedAtStart = null;
        DateTimeOffset? firstEvent = null, lastEvent = null;
        foreach (string? line in BoundedLines(reader))
        {
            if (line is null)
            {
                bad++; // longer than any event: skipped without holding it
                continue;
            }
            if (line.Length == 0) continue;
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException)
            {
                bad++;
                continue;
            }
            using (document)
            {
                var e = document.RootElement;
                if (e.ValueKind != JsonValueKind.Object)
                {
                    bad++;
                    continue;
                }
                if (!e.TryGetProperty("EventType", out var type) || type.ValueKind != JsonValueKind.String)
                {
                    foreign++;
                    continue;
                }
                try
                {
                    var at = Time(e);
                    firstEvent ??= at;
                    lastEvent = at;
                    if (ReadMark(type.GetString()!, e, at) is { } mark) marks.Add(mark);
                    switch (type.GetString())
                    {
                        case "RunStarted": info = ReadStarted(e); break;
                        case "StepCompleted": steps.Add(ReadStep(e)); break;
                        case "EvalCompleted": evaluations.Add(ReadEval(e)); break;
                        case "RunCompleted": completion = ReadCompleted(e); break;
                        case "RunFailed": failure = Text(e, "Error") ?? "unknown error"; break;
                        case "RunInterrupted": interruptedAfter = (long)Number(e, "LastCommittedStep"); break;
                        case "WorkerJoined": workers.Add(ReadWorker(e, at)); break;
                        case "CheckpointWritten": checkpoints.Add(new CheckpointMark((long)Number(e, "Step"), Text(e, "CheckpointPath") ?? "", at)); break;
                        case "ResumedFromCheckpoint":
                            long resumeAt = (long)Number(e, "Step");
                            if (steps.Count == 0 && resumedAtStart is null) resumedAtStart = new CheckpointMark(resumeAt, Text(e, "CheckpointPath") ?? "", at);
                            steps.RemoveAll(s => s.Step >= resumeAt);
                            evaluations.RemoveAll(v => v.Step > resumeAt);
                            break;
                    }
                }
                catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    bad++;
                }
            }
        }
        var runId = info?.RunId ?? System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(path)) ?? path;
        return new RunLog(path, info, steps, evaluations, completion, failure, bad, foreign, interruptedAfter)
        {
            Workers = workers,
            Marks = marks,
            Checkpoints = checkpoints,
            ResumedAtStart = resumedAtStart,
            Segments = firstEvent is DateTimeOffset start ? [new RunSegment(runId, path, info?.StartedAt ?? start, lastEvent!.Value)] : [],
        };
    }

    private static RunInfo ReadStarted(JsonElement e)
    {
        var config = e.GetProperty("Config");
        var schedule = config.TryGetProperty("Schedule", out var s) ? s : default;
        var optimizer = config.TryGetProperty("Optimizer", out var o) ? o : default;
        return new RunInfo(
            RunId: Text(e, "RunId") ?? "",
            SchemaVersion: (int)Number(e, "SchemaVersion"),
            Engine: Text(e, "Engine") ?? "",
            Workers: (int)Number(e, "Workers"),
            Model: Text(e, "Model") ?? "",
            GlobalBatch: (int)Number(e, "GlobalBatch"),
            MicroBatch: config.TryGetProperty("MicroBatch", out var m) && m.ValueKind == JsonValueKind.Number ? m.GetInt32() : null,
            LrScaling: (config.TryGetProperty("LrScaling", out var l) ? l.ToString() : "None").ToLowerInvariant(),
            BaseLearningRate: OptionalNumber(config, "LearningRate"),
            PeakLearningRate: schedule.ValueKind == JsonValueKind.Object ? OptionalNumber(schedule, "PeakLearningRate") : double.NaN,
            WarmupSteps: config.TryGetProperty("WarmupSteps", out var w) && w.ValueKind == JsonValueKind.Number ? w.GetInt32() : 0,
            Optimizer: optimizer.ValueKind == JsonValueKind.Object && optimizer.TryGetProperty("Kind", out var k) ? k.ToString().ToLowerInvariant() : "",
            StepsPerEpoch: (int)Number(e, "StepsPerEpoch"),
            TotalSteps: (long)Number(e, "TotalSteps"),
            StartedAt: Time(e),
            Seed: config.TryGetProperty("Seed", out var seed) && seed.ValueKind == JsonValueKind.Number ? seed.GetInt64() : null,
            Reduce: config.TryGetProperty("Reduce", out var reduce) ? reduce.ToString().ToLowerInvariant() : "star", // schema 8; star before
            BatchPolicy: BatchPolicyOf(config), // schema 12
            TrainSamples: (int)OptionalNumber(e, "TrainSamples", 0),
            BnBatch: config.TryGetProperty("BnBatch", out var bn) && bn.ValueKind == JsonValueKind.Number ? bn.GetInt32() : null); // schema 13
    }

    /// <summary>"auto MIN:MAX" for --global-batch auto, "schedule STEP:B,…" for --batch-schedule, null for a fixed batch.</summary>
    private static string? BatchPolicyOf(JsonElement config)
    {
        if (config.TryGetProperty("Adaptive", out var a) && a.ValueKind == JsonValueKind.Object)
            return $"auto {OptionalNumber(a, "Min", 0):F0}:{OptionalNumber(a, "Max", 0):F0}";
        if (config.TryGetProperty("BatchSchedule", out var s) && s.ValueKind == JsonValueKind.Array && s.GetArrayLength() > 0)
            return "schedule " + string.Join(',', s.EnumerateArray().Select(c => $"{OptionalNumber(c, "Step", 0):F0}:{OptionalNumber(c, "Batch", 0):F0}"));
        return null;
    }

    private static StepPoint ReadStep(JsonElement e) => new(
        (long)Number(e, "Step"), (int)Number(e, "Epoch"), Number(e, "Loss"), Number(e, "LearningRate"), Number(e, "GradNorm"),
        Number(e, "StepMs"), Number(e, "ComputeMs"), OptionalNumber(e, "TransferMs"), Number(e, "UpdateMs"), Number(e, "WaitMs"),
        Number(e, "SamplesPerSecond"), (long)OptionalNumber(e, "BytesMoved", 0), OptionalNumber(e, "PeakMemoryMb"), OptionalNumber(e, "BSimple"),
        OptionalNumber(e, "GradSquaredEstimate"), OptionalNumber(e, "TraceSigmaEstimate"), ArrayOf<int>(e, "Shares", IntItem), Time(e),
        ArrayOf<string>(e, "ShareWorkers", StringItem), ArrayOf<double>(e, "ShareSamplesPerSecond", DoubleItem),
        (long)OptionalNumber(e, "WorkerLinkBytes", 0), (long)OptionalNumber(e, "BytesHandedOver", 0), (int)OptionalNumber(e, "GlobalBatch", 0),
        OptionalNumber(e, "LrGain"), OptionalNumber(e, "BNoise"), OptionalNumber(e, "StatisticalEfficiency"));

    private static WorkerJoin ReadWorker(JsonElement e, DateTimeOffset at) => new(
        Text(e, "WorkerId") ?? throw new KeyNotFoundException("WorkerId"), Text(e, "WorkerAddress") ?? "", Text(e, "Device") ?? "",
        (int)OptionalNumber(e, "Threads", 0), OptionalNumber(e, "MeasuredSamplesPerSecond"), Text(e, "Transport") ?? "in-process", at);

    /// <summary>The events a run's time line shows, each as one short line; null for the others.</summary>
    private static RunMark? ReadMark(string type, JsonElement e, DateTimeOffset at)
    {
        long? step = e.TryGetProperty("Step", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt64() : null;
        string? detail = type switch
        {
            "WorkerJoined" => $"{Text(e, "WorkerId")} ready ({OptionalNumber(e, "ReadyWorkers", 0):F0} ready)",
            "WorkerNodeDowned" => $"worker node {Text(e, "NodeAddress")} downed: {Text(e, "Reason")}",
            "WorkerLeft" => $"{Text(e, "WorkerId")}: {Text(e, "Reason")} ({OptionalNumber(e, "ReadyWorkers", 0):F0} ready)",
            "StepReplanned" => $"{OptionalNumber(e, "MovedCount", 0):F0} samples of {Text(e, "LostWorker")} moved ({Text(e, "Reason")})",
            "StallReport" => $"late after {OptionalNumber(e, "DeadlineSeconds"):G3} s: {string.Join(", ", ArrayOf<string>(e, "LateWorkers", StringItem) ?? [])}",
            "RunPaused" => $"paused: {OptionalNumber(e, "ReadyWorkers", 0):F0} of at least {OptionalNumber(e, "MinWorkers", 0):F0} workers ready",
            "RunResumed" => $"resumed with {OptionalNumber(e, "ReadyWorkers", 0):F0} workers",
            "CheckpointWritten" => $"checkpoint {System.IO.Path.GetFileName(Text(e, "CheckpointPath"))}",
            "ResumedFromCheckpoint" => $"resumed from {System.IO.Path.GetFileName(Text(e, "CheckpointPath"))}",
            "CoordinatorRecovering" => $"coordinator recovering (attempt {OptionalNumber(e, "Attempt", 0):F0}): {Text(e, "Error")}",
            "NonFiniteGradient" => $"step skipped: loss {OptionalNumber(e, "Loss"):G3}, grad norm {OptionalNumber(e, "GradNorm"):G3}",
            "WorkerQuarantined" => $"worker #{OptionalNumber(e, "WorkerKey", -1):F0} at {Text(e, "ActorAddress")} quarantined for {OptionalNumber(e, "QuarantineSeconds"):G3} s ({OptionalNumber(e, "Nth", 0):F0} of {OptionalNumber(e, "QuarantineLimit", 0):F0}): {Text(e, "Reason")}",
            "WorkerReleased" => $"worker #{OptionalNumber(e, "WorkerKey", -1):F0} at {Text(e, "ActorAddress")} released ({Text(e, "Why")})",
            "SpeedClaimIgnored" => $"worker #{OptionalNumber(e, "WorkerKey", -1):F0} at {Text(e, "ActorAddress")} claims {OptionalNumber(e, "ClaimedSamplesPerSecond"):G3} samples/s, delivers {OptionalNumber(e, "DeliveredSamplesPerSecond"):G3}",
            "ShareOutlier" => $"share {OptionalNumber(e, "Place", -1):F0} of worker #{OptionalNumber(e, "WorkerKey", -1):F0} at {Text(e, "ActorAddress")} {OptionalNumber(e, "Ratio"):G3} × the median gradient norm: {Text(e, "Action")}",
            "EvaluationDisputed" => $"{Text(e, "Split")} evaluation disputed: {OptionalNumber(e, "AuditRows", 0):F0} audit rows answered differently, no majority",
            "TargetReached" => $"target {100 * OptionalNumber(e, "TargetAccuracy"):F1} % reached",
            "BatchSizeChanged" => $"global batch {OptionalNumber(e, "OldBatch", 0):F0} → {OptionalNumber(e, "NewBatch", 0):F0} (B_noise {OptionalNumber(e, "BNoise"):G3}, predicted goodput {OptionalNumber(e, "OldGoodput"):G3} → {OptionalNumber(e, "NewGoodput"):G3})",
            "RunFailed" => $"failed: {Text(e, "Error")}",
            "RunInterrupted" => $"interrupted: {Text(e, "Reason")}",
            _ => null,
        };
        return detail is null ? null : new RunMark(at, step, type, detail);
    }

    /// <summary>
    /// The array <paramref name="name"/> with every item read by <paramref name="item"/>, or null when it is
    /// absent, not an array, or holds an item <paramref name="item"/> refuses (returns false for).
    /// </summary>
    private static T[]? ArrayOf<T>(JsonElement e, string name, TryRead<T> item)
    {
        if (!e.TryGetProperty(name, out var array) || array.ValueKind != JsonValueKind.Array) return null;
        var values = new List<T>();
        foreach (var element in array.EnumerateArray())
        {
            if (!item(element, out T value)) return null;
            values.Add(value);
        }
        return values.ToArray();
    }

    private delegate bool TryRead<T>(JsonElement element, out T value);

    private static bool IntItem(JsonElement e, out int value)
    {
        value = 0;
        return e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out value);
    }

    private static bool DoubleItem(JsonElement e, out double value)
    {
        value = 0;
        return e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out value);
    }

    private static bool StringItem(JsonElement e, out string value)
    {
        value = e.ValueKind == JsonValueKind.String ? e.GetString()! : "";
        return e.ValueKind == JsonValueKind.String;
    }

    private static EvalPoint ReadEval(JsonElement e) => new(
        (long)Number(e, "Step"), Number(e, "Epoch"), Text(e, "Split") ?? throw new KeyNotFoundException("Split"),
        Number(e, "Loss"), Number(e, "Accuracy"), OptionalNumber(e, "GeneralizationGap"), Time(e));

    private static RunCompletion ReadCompleted(JsonElement e)
    {
        var summary = e.TryGetProperty("Summary", out var s) && s.ValueKind == JsonValueKind.Object ? s : default;
        double FromSummary(string name) => summary.ValueKind == JsonValueKind.Object ? OptionalNumber(summary, name) : double.NaN;
        return new RunCompletion(Number(e, "ValAccuracy"), Number(e, "TestAccuracy"), FromSummary("TrainAccuracy"), FromSummary("GeneralizationGap"),
            Number(e, "SamplesPerSecond"), Number(e, "WallSeconds"));
    }

    /// <summary>A required number. Serilog writes NaN and infinities as strings ("NaN"), so those are accepted too.</summary>
    private static double Number(JsonElement e, string name)
    {
        var value = e.GetProperty(name);
        return value.ValueKind switch
        {
            JsonValueKind.Number => value.GetDouble(),
            JsonValueKind.String when double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
            _ => throw new FormatException($"{name} is not a number"),
        };
    }

    /// <summary>A number added in a later schema version: missing in older logs.</summary>
    private static double OptionalNumber(JsonElement e, string name, double missing = double.NaN) =>
        e.TryGetProperty(name, out _) ? Number(e, name) : missing;

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static DateTimeOffset Time(JsonElement e) =>
        DateTimeOffset.Parse(Text(e, "@t") ?? throw new KeyNotFoundException("@t"), CultureInfo.InvariantCulture);
}
