using BatchCluster.Cli.Output;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.EndToEnd.Tests;

public class ProgressDisplayTests
{
    private static (TrainingSession Session, Func<long, StepRecord> Step) Run(long steps)
    {
        var config = new TrainingConfig { GlobalBatch = 10, Steps = steps, Dataset = "synthetic" };
        var session = new TrainingSession(config, trainSamples: 1000, new float[3], new RunEvents(Logger.None, "p"));
        return (session, s => new StepRecord(s, 0, 10, [10], 0.5, 0.1, 1, new StepTiming(1, 0, 1, 2), 5000, s + 1, default,
            BytesMoved: 0, new Dictionary<string, double> { ["local"] = 100 }));
    }

    [Fact]
    public void Redirected_output_gets_a_plain_line_per_tenth_of_the_run()
    {
        var (session, step) = Run(100);
        var output = new StringWriter();
        var display = new ProgressDisplay(output, interactive: false);
        for (int s = 0; s < 100; s++) display.Report(step(s), session);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(11, lines.Length); // step 1 (0%) and every 10% up to 100%
        Assert.StartsWith("progress: step 1/100 (1%)", lines[0]);
        Assert.StartsWith("progress: step 100/100 (100%)", lines[^1]);
        Assert.DoesNotContain('\r', output.ToString());
    }

    [Fact]
    public void On_a_terminal_log_lines_lift_the_bar_and_redraw_it()
    {
        var (session, step) = Run(50);
        var output = new StringWriter();
        var display = new ProgressDisplay(output, interactive: true);
        display.Report(step(0), session);
        display.LogWriter.Write("[12:00:00 INF] Evaluation");
        display.LogWriter.Write(" done\n");
        string text = output.ToString();
        int bar = text.IndexOf("\r[", StringComparison.Ordinal);
        int erase = text.IndexOf("\r\u001b[2K[12:00:00 INF] Evaluation done\n", StringComparison.Ordinal);
        Assert.True(bar >= 0 && erase > bar, text);
        Assert.EndsWith("samples/s", text); // the bar is back under the log line
        Assert.Contains("step 1/50", text);
    }
}
