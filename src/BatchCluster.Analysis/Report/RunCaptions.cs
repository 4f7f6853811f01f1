using System.Globalization;
using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.Analysis.Report;

/// <summary>The captions of a run page's plots: what each shows, in this run's numbers.</summary>
public static class RunCaptions
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Accuracy(RunRow row, RunLog log)
    {
        var validations = log.Validations.OrderBy(v => v.Step).ToList();
        if (validations.Count == 0) return "Accuracy over the run: no validation was logged.";
        var best = validations.OrderByDescending(v => v.Accuracy).ThenBy(v => v.Step).First();
        string train = double.IsFinite(row.TrainAccuracy)
            ? $"; training subset {Show.Percent(row.TrainAccuracy)}, a generalization gap of {(100 * row.GeneralizationGap).ToString("F2", Invariant)} points (dotted, right axis)"
            : "";
        return $"Validation (solid) and training-subset (dashed) accuracy: {Show.Percent(validations[^1].Accuracy)} at the last validation "
            + $"(best {Show.Percent(best.Accuracy)} after step {best.Step.ToString("N0", Invariant)}){train}.";
    }

    public static string LossVsStep(RunLog log)
    {
        var losses = log.Steps.OrderBy(s => s.Step).Select(s => s.Loss).Where(double.IsFinite).ToList();
        if (losses.Count == 0) return "Training loss over optimizer steps: no finite loss was logged.";
        int n = Math.Max(1, Math.Min(50, losses.Count / 10));
        return $"Training loss over optimizer steps (smoothed): {losses.Take(n).Average().ToString("F3", Invariant)} over the first {n} steps, "
            + $"{losses.TakeLast(n).Average().ToString("F3", Invariant)} over the last {n}.";
    }

    public static string LossVsTime(RunRow row, RunLog log)
    {
        double seconds = log.Steps.Count == 0 ? double.NaN : TrainingClock.Of(log).Seconds(log.Steps.MaxBy(s => s.Step)!.At);
        string processes = row.Segments > 1 ? $", in {row.Segments} processes (the time between them left out)" : "";
        return $"Training loss over wall time: {row.Steps.ToString("N0", Invariant)} steps in {seconds.ToString("F1", Invariant)} s of training{processes}, evaluations included.";
    }

    public static string ThroughputOverTime(RunLog log)
    {
        double median = RunRow.Median(log.Steps.Select(s => s.SamplesPerSecond));
        var clock = TrainingClock.Of(log);
        var during = log.Marks.Where(m => clock.Seconds(m.At) >= 0).GroupBy(m => m.Kind).Select(g => $"{g.Count()} {g.Key}").ToList();
        string events = during.Count == 0 ? "no event during training" : "events during training (dashed): " + string.Join(", ", during);
        return $"Throughput over wall time: median {median.ToString("N0", Invariant)} samples/s per step; {events}.";
    }

    public static string StepTimeSplit(RunLog log)
    {
        double step = RunRow.Median(log.Steps.Select(s => s.StepMs));
        string Part(string name, Func<StepPoint, double> ms) =>
            $"{name} {(100 * RunRow.Median(log.Steps.Select(ms)) / step).ToString("F0", Invariant)} %";
        return $"Where a step's time goes (stacked, smoothed): median step {step.ToString("F2", Invariant)} ms; median parts "
            + $"{Part("compute", s => s.ComputeMs)}, {Part("transfer", s => s.TransferMs)}, {Part("update", s => s.UpdateMs)}, {Part("wait", s => s.WaitMs)} of it.";
    }

    public static string LearningRate(RunLog log)
    {
        var rates = log.Steps.OrderBy(s => s.Step).ToList();
        if (rates.Count == 0) return "The learning rate each step applied.";
        double peak = rates.Max(s => s.LearningRate);
        long reached = rates.First(s => s.LearningRate >= peak * (1 - 1e-9)).Step;
        return reached == rates[0].Step
            ? $"The learning rate each step applied: {peak.ToString("G4", Invariant)} from the first step."
            : $"The learning rate each step applied: warm-up from {rates[0].LearningRate.ToString("G4", Invariant)} to the peak {peak.ToString("G4", Invariant)} at step {reached.ToString("N0", Invariant)}.";
    }

    public static string BatchSizing(RunRow row, RunLog log)
    {
        int changes = log.Marks.Count(m => m.Kind == "BatchSizeChanged");
        var batches = log.Steps.Where(s => s.GlobalBatch > 0).Select(s => s.GlobalBatch).ToList();
        string range = batches.Count == 0 ? "" : $" between {batches.Min().ToString("N0", Invariant)} and {batches.Max().ToString("N0", Invariant)}";
        var replay = new List<string>();
        StepPoint? previous = null;
        foreach (var step in log.Steps.Where(s => s.GlobalBatch > 0).OrderBy(s => s.Step))
        {
            if (previous is null || step.GlobalBatch != previous.GlobalBatch) // the first entry from step 0: it sets the starting batch
                replay.Add($"{(previous is null ? 0 : step.Step).ToString(Invariant)}:{step.GlobalBatch.ToString(Invariant)}");
            previous = step;
        }
        return $"The global batch ({row.BatchLabel}: {changes} change{(changes == 1 ? "" : "s")}{range}), the noise scale B_noise it was chosen from, "
               + "the statistical efficiency E(M) = (B_noise + M0)/(B_noise + M) of each step's batch, and AdaScale's gain r in its learning rate (docs/adaptive-batch.md). "
               + $"The same batches again: --batch-schedule {string.Join(',', replay)}.";
    }

    public static string BSimple(RunRow row) =>
        double.IsFinite(row.FinalBSimple) && row.BatchPolicy is string policy
            ? $"The gradient noise scale B_simple per quarter epoch: {row.FinalBSimple.ToString("N0", Invariant)} samples over the last epoch; the global batch varied ({policy})."
        : double.IsFinite(row.FinalBSimple)
            ? $"The gradient noise scale B_simple per quarter epoch: {row.FinalBSimple.ToString("N0", Invariant)} samples over the last epoch, against a global batch of {row.GlobalBatch}"
              + (row.FinalBSimple > row.GlobalBatch ? ": below it, so a larger batch should still cut the steps nearly in proportion." : ": above it, so a larger batch buys fewer steps than it costs.")
            : "The gradient noise scale B_simple: not measured (it needs two or more shares per step).";
}
