using Serilog.Core;
using Serilog.Events;

namespace BatchCluster.Core.Training;

/// <summary>
/// Hears the event log's sink fail (a full disk, a file system gone read-only) and keeps the first failure, so the run
/// can stop at its next step with <c>RunFailed</c> instead of training on without a record (promise 6: the log is the
/// record of the run). Serilog never throws into the caller; this is how the failure reaches the run.
/// </summary>
/// <param name="path">The event log's path, for the message.</param>
public sealed class EventLogFailures(string path) : ILoggingFailureListener
{
    private string? _reason;

    /// <summary>Why the event log lost an event, once it has (then every later event may be lost too); null while it is whole.</summary>
    public string? Reason => Volatile.Read(ref _reason);

    public void OnLoggingFailed(object sender, LoggingFailureKind kind, string message, IReadOnlyCollection<LogEvent>? events, Exception? exception)
    {
        if (kind == LoggingFailureKind.Temporary) return; // retried by the sink; nothing lost yet
        string reason = $"writing the event log {path} failed ({exception?.Message ?? message}); {FreeSpace.Describe(path)}";
        Interlocked.CompareExchange(ref _reason, reason, null);
    }
}
