using BatchCluster.Analysis.Logs;

namespace BatchCluster.Analysis.Summary;

/// <summary>
/// One run in the summary table. Accuracies are fractions; NaN means "not measured" (e.g. an
/// incomplete run has no test accuracy, a run that never reached the target has no time to it).
/// Time to target is wall time from the start of the first step to the first validation at or
/// above the target: it includes the evaluations before it, not the start-up (a multi-node run
/// waits there for its worker nodes, seconds that vary with the machines, not with the batch),
/// nor, for a run resumed from a checkpoint (<see cref="Segments"/> &gt; 1), the time between its processes.
/// Final B_simple is the ratio of averages over the last epoch (<see cref="NoiseScaleWindows.Final"/>),
/// not the last EMA value. Bytes per sample:
/// the median step's tensor bytes that crossed a process boundary (StepCompleted.BytesMoved; before schema 9 it
/// counted in-process hand-offs too) over the global batch; <see cref="HandedOverPerSample"/> the same for the
/// tensors handed to workers in the coordinator's process by reference. Median shares:
/// <see cref="MedianSharesOf"/>.
/// </summary>
public sealed record RunRow(
    string RunId, RunStatus Status, string Engine, string Model, int Workers, int GlobalBatch, int? MicroBatch, string LrScaling,
    double PeakLearningRate, long Steps, double Epochs, double FinalValAccuracy, double BestValAccuracy, double TestAccuracy,
    double TrainAccuracy, double GeneralizationGap, long? StepsToTarget, long? SamplesToTarget, double SecondsToTarget,
    double SamplesPerSecond, double MedianStepMs, double MedianComputeMs, double MedianTransferMs, double PeakMemoryMb,
    double FinalBSimple, int BadLines, double BytesPerSample = double.NaN, string MedianShares = "", long? Seed = null, int Segments = 1,
    string Reduce = "star", double HandedOverPerSample = double.NaN, string? BatchPolicy = null, int? BnBatch = null)
{
    /// <summary>The batch as tables show it: the number, or for a run whose batch varies its policy ("auto 32:2048"; <see cref="GlobalBatch"/> is then 0, so plots against batch size leave it out).</summary>
    public string BatchLabel => BatchPolicy ?? GlobalBatch.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Everything that defines the run except the global batch: runs with the same key form one
    /// series in plots against batch size. Runs of the multi-node cluster (engine "cluster") say
    /// "worker nodes", so that they group by host count apart from the local simulated cluster,
    /// and ", ring" when they reduced by ring, so that the two topologies are series of their own; a run whose batch varies
    /// (adaptive or scheduled) is a series of its own too ("batch auto 32:2048"), and so is each ghost batch of batch norm ("bn 32").
    /// </summary>
    public string SeriesKey =>
        $"{Model}, {Workers} worker{(Engine == "cluster" ? " node" : "")}{(Workers == 1 ? "" : "s")}{(Reduce == "ring" ? ", ring" : "")}, lr {LrScaling}{(MicroBatch is int m ? $", micro {m}" : "")}{(BnBatch is int bn ? $", bn {bn}" : "")}{(BatchPolicy is string p ? $", batch {p}" : "")}";

    public string Label => BatchPolicy is null ? $"B {GlobalBatch}, {SeriesKey}" : SeriesKey;

    /// <summary>What tells the run apart in a table that already shows its series: batch and seed.</summary>
    public string ShortLabel => $"B {BatchLabel}{(Seed is long s ? $" · seed {s}" : "")}";

    public static RunRow From(RunLog log, double? targetAccuracy)
    {
        var info = log.Info;
        var validations = log.Validations.OrderBy(v => v.Step).ToList();
        var reached = targetAccuracy is double target ? validations.FirstOrDefault(v => v.Accuracy >= target) : null;
        var lastValidation = validations.LastOrDefault();
        var lastTrain = log.Evaluations.Where(e => e.Split == "train").OrderBy(e => e.Step).LastOrDefault();
        var test = log.Evaluations.LastOrDefault(e => e.Split == "test");
        // A run whose batch varies has no one batch: 0 keeps it off plots against batch size; per-step figures use each step's batch.
        int globalBatch = info is { BatchVaries: true } ? 0 : info?.GlobalBatch ?? 0;
        int BatchOf(StepPoint s) => s.GlobalBatch > 0 ? s.GlobalBatch : globalBatch;
        long steps = log.Steps.Count == 0 ? 0 : log.Steps.Max(s => s.Step) + 1;
        double trainAccuracy = log.Completion?.TrainAccuracy is double t && !double.IsNaN(t) ? t : lastTrain?.Accuracy ?? double.NaN;
        double finalVal = log.Completion?.ValidationAccuracy ?? lastValidation?.Accuracy ?? double.NaN;
        return new RunRow(
            RunId: log.RunId,
            Status: log.Status,
            Engine: info?.Engine ?? "",
            Model: info?.Model ?? "",
            Workers: info?.Workers ?? 0,
            GlobalBatch: globalBatch,
            MicroBatch: info?.MicroBatch,
            LrScaling: info?.LrScaling ?? "",
            PeakLearningRate: info?.PeakLearningRate ?? double.NaN,
            Steps: steps,
            Epochs: info is { BatchVaries: true, TrainSamples: > 0 } ? (double)log.Steps.Sum(s => (long)BatchOf(s)) / info.TrainSamples
                : info is { StepsPerEpoch: > 0 } ? (double)steps / info.StepsPerEpoch : double.NaN,
            FinalValAccuracy: finalVal,
            BestValAccuracy: validations.Count == 0 ? double.NaN : validations.Max(v => v.Accuracy),
            TestAccuracy: log.Completion?.TestAccuracy ?? test?.Accuracy ?? double.NaN,
            TrainAccuracy: trainAccuracy,
            GeneralizationGap: trainAccuracy - finalVal,
            StepsToTarget: reached?.Step,
            SamplesToTarget: reached is null ? null : log.Steps.Where(s => s.Step < reached.Step).Sum(s => (long)BatchOf(s)),
            SecondsToTarget: reached is not null ? TrainingClock.Of(log).Seconds(reached.At) : double.NaN,
            // A stitched run's RunCompleted counts only its last process's steps.
            SamplesPerSecond: log.Segments.Count <= 1 && log.Completion is { } completion ? completion.SamplesPerSecond : ThroughputOf(log.Steps, BatchOf),
            MedianStepMs: Median(log.Steps.Select(s => s.StepMs)),
            MedianComputeMs: Median(log.Steps.Select(s => s.ComputeMs)),
            MedianTransferMs: Median(log.Steps.Select(s => s.TransferMs)),
            PeakMemoryMb: log.Steps.Count == 0 ? double.NaN : log.Steps.Max(s => double.IsNaN(s.PeakMemoryMb) ? 0 : s.PeakMemoryMb),
            FinalBSimple: NoiseScaleWindows.Final(log),
            BadLines: log.BadLines,
            BytesPerSample: Median(log.Steps.Where(s => BatchOf(s) > 0).Select(s => (double)s.BytesMoved / BatchOf(s))),
            HandedOverPerSample: Median(log.Steps.Where(s => BatchOf(s) > 0).Select(s => (double)s.BytesHandedOver / BatchOf(s))),
            MedianShares: MedianSharesOf(log.Steps),
            Seed: info?.Seed,
            Segments: Math.Max(1, log.Segments.Count),
            Reduce: info?.Reduce ?? "star",
            BatchPolicy: info?.BatchPolicy,
            BnBatch: info?.BnBatch);
    }

    /// <summary>
    /// The typical plan: over the steps with the most common number of shares, the median of each
    /// position ("683/341"): equal under declared shares, by measured speed under capacity shares.
    /// </summary>
    public static string MedianSharesOf(IReadOnlyList<StepPoint> steps)
    {
        var plans = steps.Select(s => s.Shares).OfType<int[]>().Where(s => s.Length > 0).ToList();
        if (plans.Count == 0) return "";
        int width = plans.GroupBy(p => p.Length).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
        var typical = plans.Where(p => p.Length == width).ToList();
        return string.Join('/', Enumerable.Range(0, width).Select(i => Median(typical.Select(p => (double)p[i])).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)));
    }

    private static double ThroughputOf(IReadOnlyList<StepPoint> steps, Func<StepPoint, int> batchOf)
    {
        double ms = steps.Sum(s => s.StepMs);
        return ms > 0 ? steps.Sum(s => (double)batchOf(s)) / (ms / 1000.0) : double.NaN;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToList();
        if (sorted.Count == 0) return double.NaN;
        int mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
