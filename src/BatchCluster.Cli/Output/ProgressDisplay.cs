using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Output;

/// <summary>
/// Step progress: an in-place bar on an interactive terminal (redrawn at most 10 times a second),
/// or a plain line every 10% of the run when output is redirected (logs, CI, pipes).
/// </summary>
public sealed class ProgressDisplay(TextWriter output, bool interactive)
{
    private DateTime _lastDraw = DateTime.MinValue;
    private long _lastPlainDecile = -1;

    public static ProgressDisplay ForConsole() =>
        new(Console.Out, !Console.IsOutputRedirected && !Console.IsErrorRedirected);

    public void Report(StepRecord step, TrainingSession session)
    {
        long done = step.Step + 1;
        long total = session.TotalSteps;
        if (interactive)
        {
            var now = DateTime.UtcNow;
            if (done < total && now - _lastDraw < TimeSpan.FromMilliseconds(100)) return;
            _lastDraw = now;
            const int width = 30;
            int filled = (int)(width * done / total);
            output.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] step {done}/{total} epoch {session.EpochsDone:F2} loss {step.Loss:F4} lr {step.LearningRate:G4} {step.SamplesPerSecond,8:F0} samples/s ");
            if (done == total) output.WriteLine();
            return;
        }
        long decile = 10 * done / total;
        if (decile == _lastPlainDecile) return;
        _lastPlainDecile = decile;
        output.WriteLine($"progress: step {done}/{total} ({100 * done / total}%), epoch {session.EpochsDone:F2}, loss {step.Loss:F4}, lr {step.LearningRate:G4}, {step.SamplesPerSecond:F0} samples/s");
    }
}
