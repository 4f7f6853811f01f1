namespace BatchCluster.Cli.Options;

/// <summary>A standby coordinator node's run finished on another coordinator node: nothing to report here.</summary>
public sealed class RunEndedElsewhereException() : Exception("the run completed on another coordinator node; this standby node had nothing to do");
