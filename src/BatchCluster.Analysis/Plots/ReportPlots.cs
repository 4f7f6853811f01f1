using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;
using ScottPlot;

namespace BatchCluster.Analysis.Plots;

/// <summary>
/// The report's PNG plots. Each method writes one file and returns its name, or null when the
/// runs hold nothing to draw (e.g. steps to target when no target was given).
/// </summary>
public static class ReportPlots
{
    private const int Width = 880;
    private const int Height = 500;

    /// <summary>Up to this many runs, every curve has its own colour and legend entry; beyond, curves are coloured by global batch.</summary>
    public const int RunsWithOwnLegend = 8;

    /// <summary>
    /// How each run's curve is drawn: with few runs, in its own colour with its label; with many (a sweep), in the colour of its
    /// global batch, with one legend entry per batch (on the first run of that batch): the batch is what a sweep compares.
    /// </summary>
    private static List<(Color? Color, string? Legend)> CurveStyles(IReadOnlyList<(RunRow Row, RunLog Log)> runs)
    {
        if (runs.Count <= RunsWithOwnLegend)
        {
            // Runs of one configuration (seeds, or what the label does not show) are told apart by their ids.
            bool distinct = runs.Select(r => r.Row.Label).Distinct().Count() == runs.Count;
            return runs.Select(r => ((Color?)null, (string?)(distinct ? r.Row.Label : r.Row.RunId))).ToList();
        }
        var palette = new ScottPlot.Palettes.Category10();
        var batches = runs.Select(r => r.Row.GlobalBatch).Distinct().Order().ToList();
        var labelled = new HashSet<int>();
        return runs.Select(r => ((Color?)palette.GetColor(batches.IndexOf(r.Row.GlobalBatch)),
            labelled.Add(r.Row.GlobalBatch) ? $"B {r.Row.GlobalBatch}" : null)).ToList();
    }

    private static void Style(ScottPlot.Plottables.Scatter line, (Color? Color, string? Legend) style)
    {
        if (style.Color is Color color) line.Color = color;
        if (style.Legend is not null) line.LegendText = style.Legend;
    }

    /// <summary>Mean training loss per step, smoothed over a window of about 1% of the run, per run.</summary>
    public static string LossVsStep(IReadOnlyList<(RunRow Row, RunLog Log)> runs, string outDir) =>
        Loss(runs, outDir, "loss_vs_step.png", "optimizer step", (log, step) => step.Step);

    /// <summary>The same against epochs, where runs with different global batches line up by data seen.</summary>
    public static string LossVsEpoch(IReadOnlyList<(RunRow Row, RunLog Log)> runs, string outDir) =>
        Loss(runs, outDir, "loss_vs_epoch.png", "epoch (samples seen / training samples)",
            (log, step) => log.Info is { StepsPerEpoch: > 0 } info ? (double)step.Step / info.StepsPerEpoch : step.Step);

    /// <summary>One curve per run of a per-step quantity <paramref name="y"/> (of the steps in order) against <paramref name="x"/>, thinned and styled.</summary>
    private static void AddStepCurves(Plot plot, IReadOnlyList<(RunRow Row, RunLog Log)> runs, Func<RunLog, StepPoint, double> x,
        Func<IReadOnlyList<StepPoint>, double[]> y)
    {
        var styles = CurveStyles(runs);
        for (int i = 0; i < runs.Count; i++)
        {
            var log = runs[i].Log;
            if (log.Steps.Count == 0) continue;
            var steps = log.Steps.OrderBy(s => s.Step).ToList();
            var (xs, ys) = Thin(steps.Select(s => x(log, s)).ToArray(), y(steps));
            Style(plot.Add.ScatterLine(xs, ys[0]), styles[i]);
        }
    }

    private static string Loss(IReadOnlyList<(RunRow Row, RunLog Log)> runs, string outDir, string file, string xLabel, Func<RunLog, StepPoint, double> x)
    {
        var plot = new Plot();
        AddStepCurves(plot, runs, x, steps => Smooth(steps.Select(s => s.Loss).ToArray()));
        Finish(plot, "training loss (mean over the global batch, smoothed)", xLabel, "loss");
        return Save(plot, outDir, file);
    }

    /// <summary>
    /// Validation accuracy (solid) and training-subset accuracy (dashed, same colour) over each
    /// run's steps: the curve a person reads a training run by; the gap between the two lines is
    /// the generalization gap.
    /// </summary>
    public static string AccuracyVsStep(IReadOnlyList<(RunRow Row, RunLog Log)> runs, string outDir)
    {
        var plot = new Plot();
        var styles = CurveStyles(runs);
        for (int i = 0; i < runs.Count; i++)
        {
            var (row, log) = runs[i];
            var validation = log.Validations.OrderBy(v => v.Step).ToList();
            if (validation.Count == 0) continue;
            var line = plot.Add.ScatterLine(validation.Select(v => (double)v.Step).ToArray(), validation.Select(v => 100 * v.Accuracy).ToArray());
            Style(line, styles[i]);
            if (validation.Count <= FewPoints) line.MarkerSize = 6; // a line through one or two validations is not seen
            if (runs.Count > RunsWithOwnLegend) continue; // a sweep: validation only, coloured by batch
            line.LegendText = $"{row.Label}: validation";
            var train = log.Evaluations.Where(e => e.Split == "train").OrderBy(e => e.Step).ToList();
            if (train.Count == 0) continue;
            var dashed = plot.Add.ScatterLine(train.Select(v => (double)v.Step).ToArray(), train.Select(v => 100 * v.Accuracy).ToArray());
            dashed.Color = line.Color;
            dashed.LinePattern = LinePattern.Dashed;
            dashed.LegendText = $"{row.Label}: training subset";
            if (train.Count <= FewPoints) dashed.MarkerSize = 6;
            if (runs.Count == 1) AddGap(plot, validation, train);
        }
        if (!runs.Any(r => r.Log.Validations.Any())) plot.Add.Annotation("no validation was logged (--eval-every 0 validates only at the end)");
        Finish(plot, "accuracy over the run: validation (solid) and training subset (dashed)", "optimizer step", "accuracy (%)", Alignment.LowerRight);
        return Save(plot, outDir, "accuracy_vs_step.png");
    }

    /// <summary>
    /// One run's generalization gap (training subset − validation, percentage points) at the steps where
    /// both were measured, on the right axis: the distance between the two accuracy lines, as a number.
    /// </summary>
    private static void AddGap(Plot plot, IReadOnlyList<EvalPoint> validation, IReadOnlyList<EvalPoint> train)
    {
        var trainAt = train.GroupBy(t => t.Step).ToDictionary(g => g.Key, g => g.Last().Accuracy);
        var both = validation.Where(v => trainAt.ContainsKey(v.Step)).ToList();
        if (both.Count == 0) return;
        var gap = plot.Add.ScatterLine(both.Select(v => (double)v.Step).ToArray(), both.Select(v => 100 * (trainAt[v.Step] - v.Accuracy)).ToArray());
        gap.Axes.YAxis = plot.Axes.Right;
        gap.Color = Colors.Gray;
        gap.LinePattern = LinePattern.Dotted;
        gap.LegendText = "generalization gap (right axis, points)";
        plot.Axes.Right.Label.Text = "gap (train − validation, percentage points)";
    }

    /// <summary>Curves with at most this many points also mark them.</summary>
    private const int FewPoints = 12;

    /// <summary>The learning rate each step applied (warm-up, scaling), per run.</summary>
    public static string LearningRateVsStep(IReadOnlyList<(RunRow Row, RunLog Log)> runs, string outDir)
    {
        var plot = new Plot();
        AddStepCurves(plot, runs, (_, step) => step.Step, steps => steps.Select(s => s.LearningRate).ToArray());
        PlotAxes.Readable(plot, runs.SelectMany(r => r.Log.Steps.Select(s => s.LearningRate)).ToList()); // a constant rate: not a range around nothing
        Finish(plot, "learning rate over the run", "optimizer step", "learning rate", Alignment.LowerRight);
        return Save(plot, outDir, "learning_rate_vs_step.png");
    }

    /// <summary>
    /// Where one run's step time goes, stacked over the run (each part smoothed like the loss):
    /// compute, transfer, update and wait of the critical share (StepCompleted). Null for several
    /// runs: stacks do not overlay.
    /// </summary>
    public static string? StepTimeSplit(IReadOnlyList<(RunRow Row, RunLog Log)> runs, string outDir)
    {
        if (runs.Count != 1 || runs[0].Log.Steps.Count == 0) return null;
        var steps = runs[0].Log.Steps.OrderBy(s => s.Step).ToList();
        var (x, smoothed) = Thin(steps.Select(s => (double)s.Step).ToArray(),
            Smooth(steps.Select(s => s.ComputeMs).ToArray()),
            Smooth(steps.Select(s => double.IsFinite(s.TransferMs) ? s.TransferMs : 0).ToArray()), // absent in logs before schema 3
            Smooth(steps.Select(s => s.UpdateMs).ToArray()),
            Smooth(steps.Select(s => s.WaitMs).ToArray()));
        var parts = new (string Name, double[] Ms)[] { ("compute", smoothed[0]), ("transfer", smoothed[1]), ("update", smoothed[2]), ("wait", smoothed[3]) };
        var plot = new Plot();
        var lower = new double[x.Length];
        foreach (var (name, ms) in parts)
        {
            var upper = lower.Zip(ms, (l, m) => l + m).ToArray();
            var band = plot.Add.FillY(x, lower, upper);
            band.LegendText = name;
            lower = upper;
        }
        // The first steps (JIT, connections) can take 10× the rest: the axis shows the run, not them.
        var totals = lower.Order().ToArray();
        plot.Axes.SetLimitsY(0, 1.15 * totals[(int)(0.99 * (totals.Length - 1))]);
        Finish(plot, $"where a step's time goes ({runs[0].Row.Label}; smoothed, stacked)", "optimizer step", "milliseconds per step", Alignment.UpperRight);
        return Save(plot, outDir, "step_time_split.png");
    }

    public static string ValidationAccuracyVsBatch(IReadOnlyList<RunRow> rows, string outDir) =>
        AgainstBatch(rows, outDir, "val_accuracy_vs_global_batch.png", "final validation accuracy vs global batch", "validation accuracy (%)",
            r => 100 * r.FinalValAccuracy, Alignment.LowerLeft);

    /// <summary>Throughput against global batch; on a log axis when it spans a decade or more (it often does, from 32 to 4096).</summary>
    public static string ThroughputVsBatch(IReadOnlyList<RunRow> rows, string outDir)
    {
        var measured = rows.Select(r => r.SamplesPerSecond).Where(v => double.IsFinite(v) && v > 0).ToList();
        if (!PlotAxes.SpansDecade(measured))
            return AgainstBatch(rows, outDir, "throughput_vs_global_batch.png", "training throughput vs global batch", "samples/s (evaluation excluded)",
                r => r.SamplesPerSecond, Alignment.LowerRight);
        return AgainstBatch(rows, outDir, "throughput_vs_global_batch.png", "training throughput vs global batch (log–log)", "samples/s (evaluation excluded, log scale)",
            r => r.SamplesPerSecond > 0 ? Math.Log10(r.SamplesPerSecond) : double.NaN, Alignment.LowerRight,
            plot => PlotAxes.Log10(plot.Axes.Left, measured.Min(), measured.Max()));
    }

    public static string GapVsBatch(IReadOnlyList<RunRow> rows, string outDir) =>
        AgainstBatch(rows, outDir, "generalization_gap_vs_global_batch.png", "generalization gap (train − validation accuracy) vs global batch",
            "gap (percentage points)", r => 100 * r.GeneralizationGap);

    /// <param name="yAxis">Sets the vertical axis instead of <see cref="PlotAxes.Readable"/> (e.g. a log axis for log values).</param>
    private static string AgainstBatch(IReadOnlyList<RunRow> rows, string outDir, string file, string title, string yLabel, Func<RunRow, double> y,
        Alignment legend = Alignment.UpperRight, Action<Plot>? yAxis = null)
    {
        var plot = new Plot();
        var usable = rows.Where(r => r.GlobalBatch > 0 && double.IsFinite(y(r))).ToList();
        foreach (var series in usable.GroupBy(r => r.SeriesKey).OrderBy(g => g.Key, StringComparer.Ordinal))
            AddSeries(plot, series.Key, series.ToList(), y);
        if (usable.Count > 0)
        {
            PlotAxes.Log2(plot.Axes.Bottom, usable.Min(r => r.GlobalBatch), usable.Max(r => r.GlobalBatch));
            if (yAxis is null) PlotAxes.Readable(plot, usable.Select(y).ToList());
            else yAxis(plot);
        }
        Finish(plot, title, "global batch (log scale)", yLabel, legend);
        return Save(plot, outDir, file);
    }

    /// <summary>
    /// One series against log2(global batch): every run as a marker, and a line through the median
    /// at each global batch (with several seeds per batch the line is the typical run and the
    /// markers show the spread). Returns the line's colour and the medians by global batch.
    /// </summary>
    private static (Color Color, List<(int Batch, double Median)> Medians) AddSeries(Plot plot, string label, List<RunRow> runs, Func<RunRow, double> y)
    {
        var medians = runs.GroupBy(r => r.GlobalBatch).OrderBy(g => g.Key)
            .Select(g => (Batch: g.Key, Median: RunRow.Median(g.Select(y)))).ToList();
        var line = plot.Add.ScatterLine(medians.Select(m => Math.Log2(m.Batch)).ToArray(), medians.Select(m => m.Median).ToArray());
        line.LegendText = runs.Count > medians.Count ? $"{label} (line: median over runs)" : label;
        var markers = plot.Add.ScatterPoints(runs.Select(r => Math.Log2(r.GlobalBatch)).ToArray(), runs.Select(y).ToArray());
        markers.Color = line.Color;
        markers.MarkerSize = 7;
        return (line.Color, medians);
    }

    /// <summary>
    /// Steps to the target accuracy against global batch, both on log scales, with the perfect
    /// scaling line (steps ∝ 1/B) through each series' median at its smallest batch: points on it
    /// mean doubling the batch halves the steps; points above it are the diminishing-returns regime.
    /// </summary>
    public static string? StepsToTargetVsBatch(IReadOnlyList<RunRow> rows, double? targetAccuracy, string outDir)
    {
        if (targetAccuracy is null) return null;
        var reached = rows.Where(r => r.StepsToTarget is > 0 && r.GlobalBatch > 0).ToList();
        var plot = new Plot();
        foreach (var series in reached.GroupBy(r => r.SeriesKey).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var (color, medians) = AddSeries(plot, series.Key, series.ToList(), r => Math.Log10(r.StepsToTarget!.Value));
            if (medians.Count < 2) continue;
            var (firstBatch, firstLogSteps) = medians[0];
            int lastBatch = medians[^1].Batch;
            var ideal = plot.Add.ScatterLine(new[] { Math.Log2(firstBatch), Math.Log2(lastBatch) },
                new[] { firstLogSteps, firstLogSteps - Math.Log10((double)lastBatch / firstBatch) });
            ideal.LinePattern = LinePattern.Dashed;
            ideal.Color = color;
            ideal.LegendText = $"perfect scaling from B {firstBatch}";
        }
        if (reached.Count > 0)
        {
            PlotAxes.Log2(plot.Axes.Bottom, reached.Min(r => r.GlobalBatch), reached.Max(r => r.GlobalBatch));
            double minSteps = reached.Min(r => r.StepsToTarget!.Value), maxSteps = reached.Max(r => r.StepsToTarget!.Value);
            PlotAxes.Log10(plot.Axes.Left, minSteps * reached.Min(r => r.GlobalBatch) / reached.Max(r => r.GlobalBatch), maxSteps);
        }
        else
        {
            plot.Add.Annotation($"no run reached {100 * targetAccuracy:F1} % validation accuracy");
        }
        Finish(plot, $"steps to {100 * targetAccuracy:F1} % validation accuracy (log–log)", "global batch (log scale)", "optimizer steps (log scale)");
        return Save(plot, outDir, "steps_to_target_vs_global_batch.png");
    }

    /// <summary>
    /// Wall time from the first step to the first validation at or above the target, against
    /// global batch (log–log): what a user waits for, where steps to target and the time a step
    /// takes (compute, and the network on several nodes) meet.
    /// </summary>
    public static string? SecondsToTargetVsBatch(IReadOnlyList<RunRow> rows, double? targetAccuracy, string outDir)
    {
        if (targetAccuracy is null) return null;
        var reached = rows.Where(r => double.IsFinite(r.SecondsToTarget) && r.SecondsToTarget > 0 && r.GlobalBatch > 0).ToList();
        var plot = new Plot();
        foreach (var series in reached.GroupBy(r => r.SeriesKey).OrderBy(g => g.Key, StringComparer.Ordinal))
            AddSeries(plot, series.Key, series.ToList(), r => Math.Log10(r.SecondsToTarget));
        if (reached.Count > 0)
        {
            PlotAxes.Log2(plot.Axes.Bottom, reached.Min(r => r.GlobalBatch), reached.Max(r => r.GlobalBatch));
            PlotAxes.Log10(plot.Axes.Left, reached.Min(r => r.SecondsToTarget), reached.Max(r => r.SecondsToTarget));
        }
        else
        {
            plot.Add.Annotation($"no run reached {100 * targetAccuracy:F1} % validation accuracy");
        }
        Finish(plot, $"wall time to {100 * targetAccuracy:F1} % validation accuracy (log–log)", "global batch (log scale)", "seconds from the first step (log scale)");
        return Save(plot, outDir, "seconds_to_target_vs_global_batch.png");
    }

    /// <summary>
    /// B_simple (the gradient noise scale) against training progress on a log axis, as ratios of
    /// averages over quarter-epoch windows (<see cref="NoiseScaleWindows"/>), for runs with two or
    /// more shares per step.
    /// </summary>
    public static string BSimpleOverTraining(IReadOnlyList<(RunRow Row, RunLog Log)> runs, string outDir)
    {
        var plot = new Plot();
        var all = new List<double>();
        var styles = CurveStyles(runs);
        for (int i = 0; i < runs.Count; i++)
        {
            var (row, log) = runs[i];
            var curve = NoiseScaleWindows.Curve(log);
            if (curve.Count == 0) continue;
            var line = plot.Add.Scatter(curve.Select(p => p.Epoch).ToArray(), curve.Select(p => Math.Log10(p.BSimple)).ToArray());
            Style(line, styles[i]);
            line.MarkerSize = 4;
            all.AddRange(curve.Select(p => p.BSimple));
        }
        if (all.Count == 0) plot.Add.Annotation("no run logged B_simple (it needs two or more shares per step, or a run that estimates the noise: auto or adascale)");
        else PlotAxes.Log10(plot.Axes.Left, all.Min(), all.Max());
        Finish(plot, "gradient noise scale B_simple = mean(tr Σ) / mean(|G|²) per quarter epoch", "epoch", "B_simple (samples, log scale)", Alignment.LowerRight);
        return Save(plot, outDir, "b_simple_over_training.png");
    }

    /// <summary>Points a curve keeps at most: more cannot be told apart at the plot's width, and only make the PNG larger.</summary>
    public const int MaxCurvePoints = 600;

    /// <summary>Every k-th point (and the last) of a curve and of the values that go with it, so at most <see cref="MaxCurvePoints"/> remain.</summary>
    public static (double[] X, double[][] Ys) Thin(double[] x, params double[][] ys)
    {
        int every = (int)Math.Ceiling((double)x.Length / MaxCurvePoints);
        if (every <= 1) return (x, ys);
        var keep = Enumerable.Range(0, x.Length).Where(i => i % every == 0 || i == x.Length - 1).ToArray();
        return (keep.Select(i => x[i]).ToArray(), ys.Select(y => keep.Select(i => y[i]).ToArray()).ToArray());
    }

    /// <summary>Moving average over about 1% of the points (at least 1), so long noisy runs stay readable.</summary>
    public static double[] Smooth(double[] values)
    {
        int window = Math.Max(1, values.Length / 100);
        var smoothed = new double[values.Length];
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            smoothed[i] = sum / Math.Min(i + 1, window);
        }
        return smoothed;
    }

    /// <param name="legend">Where the legend goes: the corner the curves usually leave empty.</param>
    internal static void Finish(Plot plot, string title, string xLabel, string yLabel, Alignment legend = Alignment.UpperRight)
    {
        plot.Axes.Title.Label.Text = title;
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.Axes.Left.Label.Text = yLabel;
        plot.ShowLegend(legend);
    }

    internal static string Save(Plot plot, string outDir, string file)
    {
        plot.SavePng(Path.Combine(outDir, file), Width, Height);
        return file;
    }
}
