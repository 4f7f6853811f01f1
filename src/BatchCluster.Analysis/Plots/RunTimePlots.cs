using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;
using ScottPlot;

namespace BatchCluster.Analysis.Plots;

/// <summary>
/// One run against wall time (its training time: from the first step, the time between the
/// processes of a resumed run left out): the loss, and the throughput with the events that
/// explain its changes (workers joining and leaving, re-plans, stalls, pauses, checkpoints,
/// resumes) as vertical lines.
/// </summary>
public static class RunTimePlots
{
    /// <summary>Seconds up to five minutes of training, minutes beyond.</summary>
    private static (double Divisor, string Unit) TimeUnit(RunLog log, TrainingClock clock)
    {
        double last = log.Steps.Count == 0 ? 0 : clock.Seconds(log.Steps.MaxBy(s => s.Step)!.At);
        return last > 300 ? (60, "minutes") : (1, "seconds");
    }

    public static string? LossVsTime(RunRow row, RunLog log, string outDir)
    {
        if (log.Steps.Count == 0) return null;
        var steps = log.Steps.OrderBy(s => s.Step).ToList();
        var clock = TrainingClock.Of(log);
        var (divisor, unit) = TimeUnit(log, clock);
        var plot = new Plot();
        var (x, y) = ReportPlots.Thin(steps.Select(s => clock.Seconds(s.At) / divisor).ToArray(), ReportPlots.Smooth(steps.Select(s => s.Loss).ToArray()));
        var line = plot.Add.ScatterLine(x, y[0]);
        line.LegendText = row.Label;
        ReportPlots.Finish(plot, "training loss over wall time (smoothed)", $"training time ({unit} from the first step)", "loss");
        return ReportPlots.Save(plot, outDir, "loss_vs_time.png");
    }

    private static readonly (string Kind, string Legend, Color Color)[] MarkStyles =
    [
        ("WorkerJoined", "worker joined", Colors.SeaGreen),
        ("WorkerLeft", "worker left", Colors.FireBrick),
        ("StepReplanned", "share re-planned", Colors.DarkOrange),
        ("StallReport", "stall", Colors.GoldenRod),
        ("RunPaused", "paused", Colors.Purple),
        ("RunResumed", "resumed", Colors.MediumPurple),
        ("CheckpointWritten", "checkpoint", Colors.Gray),
        ("ResumedFromCheckpoint", "resumed from checkpoint", Colors.Black),
        ("CoordinatorRecovering", "coordinator recovering", Colors.DarkRed),
        ("NonFiniteGradient", "step skipped (not finite)", Colors.Magenta),
        ("WorkerQuarantined", "worker quarantined", Colors.Crimson),
        ("WorkerReleased", "worker released", Colors.Teal),
        ("SpeedClaimIgnored", "speed claim ignored", Colors.SaddleBrown),
        ("ShareOutlier", "share outlier", Colors.OrangeRed),
        ("EvaluationDisputed", "evaluation disputed", Colors.DarkGoldenRod),
    ];

    /// <summary>Samples/s over the run (smoothed), and the run's events on the same time axis.</summary>
    public static string? ThroughputOverTime(RunRow row, RunLog log, string outDir)
    {
        if (log.Steps.Count == 0) return null;
        var steps = log.Steps.OrderBy(s => s.Step).ToList();
        var clock = TrainingClock.Of(log);
        var (divisor, unit) = TimeUnit(log, clock);
        var plot = new Plot();
        double[] speed = ReportPlots.Smooth(steps.Select(s => s.SamplesPerSecond).ToArray());
        var (x, y) = ReportPlots.Thin(steps.Select(s => clock.Seconds(s.At) / divisor).ToArray(), speed);
        var line = plot.Add.ScatterLine(x, y[0]);
        line.LegendText = "samples/s (smoothed)";
        line.Color = Colors.SteelBlue;
        foreach (var (kind, legend, color) in MarkStyles)
        {
            bool first = true;
            foreach (var mark in log.Marks.Where(m => m.Kind == kind))
            {
                double at = clock.Seconds(mark.At) / divisor;
                if (!double.IsFinite(at) || at < 0) continue; // before the first step (workers joining at start-up): in the table
                var vertical = plot.Add.VerticalLine(at, 1, color);
                vertical.LinePattern = LinePattern.Dashed;
                if (first) vertical.LegendText = legend;
                first = false;
            }
        }
        // The first steps (JIT, connections) are far off the typical run: the axis shows the run.
        var sorted = speed.Where(double.IsFinite).Order().ToArray();
        if (sorted.Length > 0) plot.Axes.SetLimitsY(0, 1.15 * sorted[(int)(0.99 * (sorted.Length - 1))]);
        if (sorted.Length > 0 && sorted[^1] >= 10_000) plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = PlotAxes.Thousands };
        ReportPlots.Finish(plot, $"throughput and events over wall time ({row.Label})", $"training time ({unit} from the first step)", "samples/s (evaluation excluded)",
            Alignment.LowerRight);
        return ReportPlots.Save(plot, outDir, "throughput_vs_time.png");
    }
}
