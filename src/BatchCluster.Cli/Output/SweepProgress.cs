using System.Globalization;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Output;

/// <summary>
/// One progress display for a whole sweep: a line when each run starts, ends or is skipped, and on
/// an interactive terminal an in-place bar over all the sweep's steps (redrawn at most 10 times a
/// second). The runs' own console logs are not shown; they are in each run's event log.
/// </summary>
public sealed class SweepProgress(TextWriter output, bool interactive, int runs, long totalSteps)
{
    private long _stepsDone;
    private long _stepsBeforeRun;
    private DateTime _lastDraw = DateTime.MinValue;
    private bool _barShown;
    private int _run;
    private string _runId = "";

    public static SweepProgress ForConsole(int runs, long totalSteps) =>
        new(Console.Out, !Console.IsOutputRedirected && !Console.IsErrorRedirected, runs, totalSteps);

    public void RunSkipped(int index, string runId, string reason) => Line($"sweep: run {index}/{runs} {runId}: {reason}, skipped");

    public void RunStarting(int index, string runId, TrainingConfig config)
    {
        _run = index;
        _runId = runId;
        _stepsBeforeRun = _stepsDone;
        Line(string.Create(CultureInfo.InvariantCulture,
            $"sweep: run {index}/{runs} {runId}: global batch {config.GlobalBatch}, {config.Workers} worker{(config.Workers == 1 ? "" : "s")}, lr {config.Schedule.PeakLearningRate:G4} ({config.LrScaling.ToString().ToLowerInvariant()} scaling) …"));
    }

    public void Step(StepRecord step, TrainingSession session)
    {
        _stepsDone = _stepsBeforeRun + step.Step + 1;
        if (!interactive) return;
        var now = DateTime.UtcNow;
        if (now - _lastDraw < TimeSpan.FromMilliseconds(100)) return;
        _lastDraw = now;
        output.Write(string.Create(CultureInfo.InvariantCulture,
            $"\r{ProgressBar.Render(_stepsDone, totalSteps)} sweep {_stepsDone}/{totalSteps} steps, run {_run}/{runs} {_runId} step {step.Step + 1}/{session.TotalSteps} loss {step.Loss:F4}"));
        output.Flush();
        _barShown = true;
    }

    public void RunEnded(int index, string runId, RunSummary summary, TimeSpan wall, long plannedSteps)
    {
        // A run that stopped at its target accuracy did fewer steps than planned: count the plan.
        _stepsDone = _stepsBeforeRun + plannedSteps;
        Line(string.Create(CultureInfo.InvariantCulture,
            $"sweep: run {index}/{runs} {runId}: val {100 * summary.ValidationAccuracy:F2} %, test {100 * summary.TestAccuracy:F2} %, gap {100 * summary.GeneralizationGap:F2} pt, {summary.Steps} steps, {summary.SamplesPerSecond:F0} samples/s, {wall.TotalSeconds:F1} s"));
    }

    public void RunFailed(int index, string runId, Exception error, long plannedSteps)
    {
        _stepsDone = _stepsBeforeRun + plannedSteps;
        Line($"sweep: run {index}/{runs} {runId}: FAILED: {error.GetBaseException().Message}");
    }

    public void Line(string text)
    {
        if (_barShown) output.Write("\r\u001b[2K");
        _barShown = false;
        output.WriteLine(text);
        output.Flush();
    }
}
