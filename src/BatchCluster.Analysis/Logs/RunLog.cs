namespace BatchCluster.Analysis.Logs;

/// <summary>How a run's log ends: with RunCompleted, RunFailed, RunInterrupted (stopped on request), or none of them (still running, killed, truncated).</summary>
public enum RunStatus { Completed, Failed, Interrupted, Incomplete }

/// <summary>What RunStarted says about a run's configuration (the columns a sweep varies).</summary>
public sealed record RunInfo(
    string RunId, int SchemaVersion, string Engine, int Workers, string Model, int GlobalBatch, int? MicroBatch,
    string LrScaling, double BaseLearningRate, double PeakLearningRate, int WarmupSteps, string Optimizer,
    int StepsPerEpoch, long TotalSteps, DateTimeOffset StartedAt, long? Seed = null, string Reduce = "star", string? BatchPolicy = null,
    int TrainSamples = 0, int? BnBatch = null)
{
    /// <summary>Whether the global batch may change between steps (<see cref="BatchPolicy"/> says how: "auto MIN:MAX" or "schedule …").</summary>
    public bool BatchVaries => BatchPolicy is not null;
}

/// <summary>
/// One StepCompleted event (<paramref name="Shares"/>: samples per share in plan order, null when the log has none; <paramref name="At"/>:
/// when it was logged; <paramref name="ShareWorkers"/> and <paramref name="ShareSamplesPerSecond"/>: per share, who computed it
/// (schema 7) and how fast (schema 5), null when the log has none; <paramref name="WorkerLinkBytes"/>: tensor bytes through the
/// busiest worker's link, both directions (schema 8; 0 when the log has none); <paramref name="BytesHandedOver"/>: tensor bytes
/// handed to workers in the coordinator's process by reference (schema 9; 0 when the log has none: before schema 9
/// <paramref name="BytesMoved"/> counted them too); <paramref name="GlobalBatch"/>: the step's samples; <paramref name="LrGain"/>,
/// <paramref name="BNoise"/>, <paramref name="StatisticalEfficiency"/>: the batch sizing's figures (schema 12, runs that adapt their
/// batch or use AdaScale; NaN otherwise).
/// </summary>
public sealed record StepPoint(
    long Step, int Epoch, double Loss, double LearningRate, double GradNorm, double StepMs, double ComputeMs, double TransferMs,
    double UpdateMs, double WaitMs, double SamplesPerSecond, long BytesMoved, double PeakMemoryMb, double BSimple,
    double GradSquaredEstimate, double TraceSigmaEstimate, int[]? Shares = null, DateTimeOffset At = default,
    string[]? ShareWorkers = null, double[]? ShareSamplesPerSecond = null, long WorkerLinkBytes = 0, long BytesHandedOver = 0,
    int GlobalBatch = 0, double LrGain = double.NaN, double BNoise = double.NaN, double StatisticalEfficiency = double.NaN);

/// <summary>One WorkerJoined event: a worker ready to train (logged again when it comes back).</summary>
public sealed record WorkerJoin(string WorkerId, string Address, string Device, int Threads, double MeasuredSamplesPerSecond, string Transport, DateTimeOffset At);

/// <summary>
/// An event that matters on a run's time line (docs/log-schema.md): a worker joined or left, a step re-planned,
/// a stall, a pause, a checkpoint, a resume, a recovering coordinator, a skipped step, the target reached.
/// <paramref name="Step"/> is the step it belongs to, when it names one.
/// </summary>
public sealed record RunMark(DateTimeOffset At, long? Step, string Kind, string Detail);

/// <summary>A CheckpointWritten event: the step a resume from it starts at, and the file.</summary>
public sealed record CheckpointMark(long Step, string Path, DateTimeOffset At);

/// <summary>
/// One process's part of a run: its log, and the time from its start to its last event. A run resumed from a
/// checkpoint of another log is stitched into that run (<see cref="RunStitcher"/>) and then has several.
/// </summary>
public sealed record RunSegment(string RunId, string Path, DateTimeOffset Start, DateTimeOffset End);

/// <summary>One EvalCompleted event (split: train, validation or test).</summary>
public sealed record EvalPoint(long Step, double Epoch, string Split, double Loss, double Accuracy, double GeneralizationGap, DateTimeOffset At);

/// <summary>What RunCompleted reports.</summary>
public sealed record RunCompletion(double ValidationAccuracy, double TestAccuracy, double TrainAccuracy, double GeneralizationGap,
    double SamplesPerSecond, double WallSeconds);

/// <summary>
/// One event log, read tolerantly: the schema's events, and counts of what could not be read.
/// <see cref="BadLines"/> counts lines that are not JSON objects (truncated or garbage) and schema
/// events missing a property they must have; <see cref="ForeignLines"/> counts valid lines without
/// an EventType (Akka and other libraries), which carry no schema and are skipped.
/// </summary>
public sealed record RunLog(
    string Path, RunInfo? Info, IReadOnlyList<StepPoint> Steps, IReadOnlyList<EvalPoint> Evaluations,
    RunCompletion? Completion, string? FailureMessage, int BadLines, int ForeignLines, long? InterruptedAfterStep = null)
{
    public RunStatus Status =>
        Completion is not null ? RunStatus.Completed : FailureMessage is not null ? RunStatus.Failed
        : InterruptedAfterStep is not null ? RunStatus.Interrupted : RunStatus.Incomplete;
    public string RunId => Info?.RunId ?? System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(Path)) ?? Path;
    public IEnumerable<EvalPoint> Validations => Evaluations.Where(e => e.Split == "validation");

    public IReadOnlyList<WorkerJoin> Workers { get; init; } = [];
    public IReadOnlyList<RunMark> Marks { get; init; } = [];
    public IReadOnlyList<CheckpointMark> Checkpoints { get; init; } = [];
    /// <summary>The checkpoint a log continues from when its ResumedFromCheckpoint comes before any step (<c>--resume</c>, a standby taking over).</summary>
    public CheckpointMark? ResumedAtStart { get; init; }
    /// <summary>The processes' parts of the run in time order (one unless stitched).</summary>
    public IReadOnlyList<RunSegment> Segments { get; init; } = [];
}
