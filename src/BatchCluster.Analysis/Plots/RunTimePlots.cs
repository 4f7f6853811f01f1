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
        ("WorkerNodeDowned", "worker node downed", Colors.Maroon),
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
        ("BatchSizeChanged", "global batch changed", Colors.RoyalBlue),
    ];

    /// <summary>
    /// A run whose batch varies or that scales its rate by AdaScale (docs/adaptive-batch.md): the global batch and B_noise (samples,
    /// left axis, log scale) and the statistical efficiency E(M) and AdaScale's gain r (right axis) over the steps. Null for other runs.
    /// </summary>
    public static string? BatchSizingOverSteps(RunRow row, RunLog log, string outDir)
    {
        var steps = log.Steps.Where(s => s.GlobalBatch > 0).OrderBy(s => s.Step).ToList();
        if (steps.Count == 0 || steps.All(s => !double.IsFinite(s.StatisticalEfficiency) && !double.IsFinite(s.LrGain))) return null;
        var plot = new Plot();
        double[] x = steps.Select(s => (double)s.Step).ToArray();
        var (tx, ty) = ReportPlots.Thin(x, steps.Select(s => Math.Log10(s.GlobalBatch)).ToArray(),
            steps.Select(s => s.BNoise > 0 ? Math.Log10(s.BNoise) : double.NaN).ToArray(), steps.Select(s => s.StatisticalEfficiency).ToArray(),
            steps.Select(s => s.LrGain).ToArray());
        var batch = plot.Add.ScatterLine(tx, ty[0]);
        batch.LegendText = "global batch";
        batch.Color = Colors.RoyalBlue;
        batch.LineWidth = 2;
        var noise = plot.Add.ScatterLine(tx, ty[1]);
        noise.LegendText = "B_noise (smoothed, batch-scaled)";
        noise.Color = Colors.DarkOrange;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = v => Math.Pow(10, v) is var p && p >= 100
            ? p.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) : p.ToString("G3", System.Globalization.CultureInfo.InvariantCulture) };
        var efficiency = plot.Add.ScatterLine(tx, ty[2]);
        efficiency.LegendText = "efficiency E(M) (right)";
        efficiency.Color = Colors.SeaGreen;
        efficiency.Axes.YAxis = plot.Axes.Right;
        var gain = plot.Add.ScatterLine(tx, ty[3]);
        gain.LegendText = "AdaScale gain r (right)";
        gain.Color = Colors.Purple;
        gain.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "E(M), r";
        ReportPlots.Finish(plot, "batch sizing over the run", "step", "samples (log scale)", Alignment.UpperLeft);
        return ReportPlots.Save(plot, outDir, "batch_sizing.png");
    }

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
