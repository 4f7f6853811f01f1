namespace BatchCluster.Cli.Options;

/// <summary>Bad command-line input. The message is one sentence naming the flag, the rule and the allowed values.</summary>
public sealed class UsageException(string message) : Exception(message);
