namespace BatchCluster.Cli.Options;

/// <summary>A command could not do its job for a reason outside the input (e.g. no seed node answered). One clear sentence, exit code 3.</summary>
public sealed class CommandFailedException(string message) : Exception(message);
