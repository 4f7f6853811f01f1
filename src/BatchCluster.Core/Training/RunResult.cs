namespace BatchCluster.Core.Training;

/// <summary>What an engine hands back: the summary line and the final parameters (flat, documented order).</summary>
public sealed record RunResult(RunSummary Summary, float[] FinalParameters);
