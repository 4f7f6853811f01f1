using BatchCluster.Core.Training;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;

namespace BatchCluster.Cli.Output;

/// <summary>
/// Serilog for one run: human-readable console lines (written to <paramref name="console"/>), and the run's event log
/// (&lt;runs-dir&gt;/&lt;run-id&gt;/events.clef, compact JSON, one event per line). StepCompleted events go
/// to the file only; the progress display covers them on the console.
/// </summary>
public static class RunLogging
{
    public const string EventLogFileName = "events.clef";
    // No {Exception}: a person reads the message; stack traces are in the event log (@x).
    private const string ConsoleTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}";

    public static string NewRunId(TrainingConfig config) =>
        $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{config.Model.Name}-b{config.GlobalBatch}-w{config.Workers}-{Random.Shared.Next(0x10000):x4}";

    /// <summary>Refuses to reuse a run id whose directory already holds a log: a run never overwrites another.</summary>
    public static string CheckNewRunDirectory(string runsDirectory, string runId)
    {
        string directory = Path.GetFullPath(Path.Combine(runsDirectory, runId));
        if (File.Exists(Path.Combine(directory, EventLogFileName)))
            throw new Options.UsageException($"run id '{runId}' already has an event log at {directory}; choose another --run-id or remove that directory");
        return directory;
    }

    /// <param name="tensorBoardDirectory">Where TensorBoard scalars go (a directory for this run), or null for none.</param>
    /// <param name="failures">Hears the event log's file fail (a full disk): the run stops at its next step (docs/robustness.md).</param>
    public static Logger Create(string runDirectory, TextWriter? console, string? tensorBoardDirectory = null, EventLogFailures? failures = null)
    {
        Directory.CreateDirectory(runDirectory);
        string path = Path.Combine(runDirectory, EventLogFileName);
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Information()
            .Enrich.FromLogContext()
            // Unbuffered: every event reaches the kernel as it is logged, so a process killed without warning loses none, in
            // particular not the CheckpointWritten of a checkpoint it wrote, by which a resumed run is found to continue it.
            .WriteTo.Fallible(wt => wt.File(new CompactJsonFormatter(), path, buffered: false, flushToDiskInterval: TimeSpan.FromSeconds(2)),
                failures ?? new EventLogFailures(path));
        if (tensorBoardDirectory is not null)
            configuration = configuration.WriteTo.Sink(new TensorBoardSink(tensorBoardDirectory));
        if (console is not null)
        {
            configuration = configuration.WriteTo.Logger(lc => lc
                .Filter.ByExcluding(e => IsEvent(e, "StepCompleted"))
                .WriteTo.Sink(new TextWriterSink(console, new MessageTemplateTextFormatter(ConsoleTemplate)), LogEventLevel.Information));
        }
        return configuration.CreateLogger();
    }

    private static bool IsEvent(LogEvent e, string type) =>
        e.Properties.TryGetValue(RunEvents.EventTypeProperty, out var value) && value is ScalarValue { Value: string s } && s == type;
}
