using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace BatchCluster.Cli.Output;

/// <summary>Writes formatted events to a TextWriter (the progress display's bar-aware console writer).</summary>
public sealed class TextWriterSink(TextWriter writer, ITextFormatter formatter) : ILogEventSink
{
    private readonly Lock _lock = new();

    public void Emit(LogEvent logEvent)
    {
        lock (_lock)
        {
            formatter.Format(logEvent, writer);
            writer.Flush();
        }
    }
}
