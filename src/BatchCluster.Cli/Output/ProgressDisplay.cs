using System.Text;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Output;

/// <summary>
/// Step progress: an in-place bar on an interactive terminal (redrawn at most 10 times a second),
/// or a plain line every 10% of the run when output is redirected (logs, CI, pipes). On a terminal,
/// console log lines go through <see cref="LogWriter"/>, which lifts the bar out of their way.
/// </summary>
public sealed class ProgressDisplay
{
    private readonly TextWriter _output;
    private readonly Lock _lock = new();
    private DateTime _lastDraw = DateTime.MinValue;
    private long _lastPlainDecile = -1;
    private string _bar = "";

    public ProgressDisplay(TextWriter output, bool interactive)
    {
        _output = output;
        Interactive = interactive;
        LogWriter = new BarAwareWriter(this);
    }

    public bool Interactive { get; }

    /// <summary>Where console log lines should be written so that they never collide with the bar.</summary>
    public TextWriter LogWriter { get; }

    public static ProgressDisplay ForConsole() =>
        new(Console.Out, !Console.IsOutputRedirected && !Console.IsErrorRedirected);

    public void Report(StepRecord step, TrainingSession session)
    {
        long done = step.Step + 1;
        // A run whose batch varies has no step count to reach when its length is in epochs: its progress is its epochs.
        bool byEpochs = !session.StepCountKnown;
        long total = byEpochs ? 1000 : session.TotalSteps;
        long reached = byEpochs ? (long)(1000 * session.Progress) : done;
        string steps = byEpochs ? $"step {done}" : $"step {done}/{total}";
        if (Interactive)
        {
            var now = DateTime.UtcNow;
            if (reached < total && now - _lastDraw < TimeSpan.FromMilliseconds(100)) return;
            _lastDraw = now;
            lock (_lock)
            {
                _bar = $"{ProgressBar.Render(reached, total)} {steps} epoch {session.EpochsDone:F2} loss {step.Loss:F4} lr {step.LearningRate:G4} {step.SamplesPerSecond,8:F0} samples/s";
                _output.Write("\r" + _bar);
                if (reached >= total)
                {
                    _output.WriteLine();
                    _bar = "";
                }
                _output.Flush();
            }
            return;
        }
        long decile = 10 * reached / total;
        if (decile == _lastPlainDecile) return;
        _lastPlainDecile = decile;
        _output.WriteLine($"progress: {steps} ({100 * reached / total}%), epoch {session.EpochsDone:F2}, loss {step.Loss:F4}, lr {step.LearningRate:G4}, {step.SamplesPerSecond:F0} samples/s");
    }

    /// <summary>Buffers text up to each newline, then erases the bar, writes the line and redraws the bar.</summary>
    private sealed class BarAwareWriter(ProgressDisplay display) : TextWriter
    {
        private readonly StringBuilder _pending = new();

        public override Encoding Encoding => display._output.Encoding;

        public override void Write(char value)
        {
            lock (display._lock)
            {
                _pending.Append(value);
                if (value == '\n') FlushLine();
            }
        }

        public override void Write(string? value)
        {
            if (string.IsNullOrEmpty(value)) return;
            lock (display._lock)
            {
                _pending.Append(value);
                if (value.Contains('\n')) FlushLine();
            }
        }

        private void FlushLine()
        {
            var output = display._output;
            if (display.Interactive && display._bar.Length > 0) output.Write("\r\u001b[2K");
            output.Write(_pending.ToString());
            _pending.Clear();
            if (display.Interactive && display._bar.Length > 0) output.Write(display._bar);
            output.Flush();
        }
    }
}
