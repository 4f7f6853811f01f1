namespace BatchCluster.Core.Training;

/// <summary>
/// What an engine hands back: the summary line and the final parameters (flat, documented order); under --bn-batch the
/// coordinator's batch-norm running statistics (Models.RunningStatistics's layout; null otherwise).
/// </summary>
public sealed record RunResult(RunSummary Summary, float[] FinalParameters, float[]? FinalRunningStatistics = null);
