namespace BatchCluster.Core.Training;

/// <summary>
/// A run stopped by a fault it could not recover from (promise 8: failures are decisions). It
/// names what a person needs to carry on: the reason, the last step whose update was committed,
/// and the newest intact checkpoint of the run's configuration (null when there is none).
/// </summary>
public sealed class RunFailedException(string reason, long lastCommittedStep, string? checkpoint, Exception? cause = null)
    : Exception(Describe(reason, lastCommittedStep, checkpoint), cause)
{
    public string Reason { get; } = reason;
    /// <summary>The last step (0-based) whose update is in the parameters; −1 when none was.</summary>
    public long LastCommittedStep { get; } = lastCommittedStep;
    public string? Checkpoint { get; } = checkpoint;

    private static string Describe(string reason, long lastCommittedStep, string? checkpoint) =>
        $"{reason}; {(lastCommittedStep < 0 ? "no step was committed" : $"the last committed step is {lastCommittedStep}")}, "
        + (checkpoint is null ? "and there is no checkpoint to resume from" : $"the newest intact checkpoint is {checkpoint} (continue with --resume)");
}

/// <summary>A run stopped on request (SIGTERM, SIGINT) after writing its terminal event and, with checkpoints on, a checkpoint.</summary>
public sealed class RunInterruptedException(long lastCommittedStep, string? checkpoint)
    : Exception($"interrupted after step {lastCommittedStep}" + (checkpoint is null ? "" : $"; checkpoint {checkpoint} (continue with --resume)"))
{
    public long LastCommittedStep { get; } = lastCommittedStep;
    public string? Checkpoint { get; } = checkpoint;
}
