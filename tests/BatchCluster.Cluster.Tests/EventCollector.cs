using System.Collections.Concurrent;
using BatchCluster.Core.Training;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace BatchCluster.Cluster.Tests;

/// <summary>Collects the events of a run in memory (the same events the run's log file receives).</summary>
public sealed class EventCollector : ILogEventSink
{
    public ConcurrentQueue<LogEvent> Events { get; } = new();
    /// <summary>Called with every event as it is logged (on the logging thread).</summary>
    public event Action<LogEvent>? Emitted;

    public void Emit(LogEvent logEvent)
    {
        Events.Enqueue(logEvent);
        Emitted?.Invoke(logEvent);
    }

    public IEnumerable<LogEvent> OfType(string type) => Events.Where(e => IsOfType(e, type));

    public static bool IsOfType(LogEvent e, string type) =>
        e.Properties.TryGetValue(RunEvents.EventTypeProperty, out var v) && v is ScalarValue { Value: string s } && s == type;

    public RunEvents Run(string id) => new(new LoggerConfiguration().WriteTo.Sink(this).CreateLogger(), id);
}
