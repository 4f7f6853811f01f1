using System.Diagnostics;
using System.Diagnostics.Metrics;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.Diagnostics;

/// <summary>
/// BatchCluster's live metrics: one <see cref="Meter"/>, every instrument's name, unit and meaning in this file
/// (docs/monitoring.md lists them as Prometheus shows them). Names follow OpenTelemetry's rules (dotted
/// lower-case namespaces, units in UCUM, counts as annotations such as <c>{step}</c>); an exporter turns them
/// into its own (Prometheus: <c>batchcluster_steps_total</c>, <c>batchcluster_step_duration_seconds</c>).
/// The coordinator's instruments are fed by <see cref="RunEvents"/> — the event log's one writer, so every
/// engine and every event that is logged is also measured — and a worker node's by its worker actor.
/// Recording costs nothing measurable while no exporter listens (the Meter's instruments are disabled then).
/// </summary>
public static class TrainingMetrics
{
    public const string MeterName = "BatchCluster";

    public static readonly string Version = typeof(TrainingMetrics).Assembly.GetName().Version?.ToString() ?? "0";

    private static readonly Meter Meter = new(MeterName, Version);

    /// <summary>Bucket bounds in seconds for step and share times: 1 ms to 10 s in 1-2-5 steps (a small MLP step to a large CNN batch).</summary>
    public static readonly IReadOnlyList<double> DurationBuckets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];

    private static readonly InstrumentAdvice<double> DurationAdvice = new() { HistogramBucketBoundaries = DurationBuckets };

    // The coordinator (train, node --role coordinator).
    private static readonly Counter<long> Steps = Meter.CreateCounter<long>("batchcluster.steps", "{step}", "Mini-batch updates applied.");
    private static readonly Counter<long> Samples = Meter.CreateCounter<long>("batchcluster.samples", "{sample}", "Training samples in applied steps (rate() is the throughput).");
    private static readonly Histogram<double> StepDuration = Meter.CreateHistogram("batchcluster.step.duration", "s",
        "Wall time of a step, from handing out its shares to the committed update.", advice: DurationAdvice);
    private static readonly Counter<double> StepPhaseTime = Meter.CreateCounter<double>("batchcluster.step.phase.time", "s",
        "Step time by phase (compute, transfer, update, wait) on the critical share; rate() of one over rate() of all is its fraction.");
    private static readonly Gauge<double> Throughput = Meter.CreateGauge<double>("batchcluster.step.throughput", "{sample}/s", "Samples per second of the last step.");
    private static readonly Gauge<double> Loss = Meter.CreateGauge<double>("batchcluster.training.loss", null, "Mean training loss of the last step's global batch.");
    private static readonly Gauge<double> ValidationAccuracy = Meter.CreateGauge<double>("batchcluster.validation.accuracy", "1", "Accuracy of the last validation evaluation (0 to 1).");
    private static readonly Gauge<long> GlobalBatch = Meter.CreateGauge<long>("batchcluster.global_batch", "{sample}", "Global batch of the last step.");
    private static readonly Gauge<double> NoiseScale = Meter.CreateGauge<double>("batchcluster.noise_scale", "{sample}", "B_simple, the gradient noise scale measured at the last step (where there were two shares or more).");
    private static readonly Gauge<long> WorkersReady = Meter.CreateGauge<long>("batchcluster.workers.ready", "{worker}", "Workers ready to take shares.");
    private static readonly Counter<long> Replans = Meter.CreateCounter<long>("batchcluster.replans", "{replan}", "Shares re-planned onto other workers (a worker lost, failed, late or quarantined).");
    private static readonly Counter<long> Stalls = Meter.CreateCounter<long>("batchcluster.stalls", "{stall}", "Steps that missed their deadline.");
    private static readonly Counter<long> SkippedSteps = Meter.CreateCounter<long>("batchcluster.steps.skipped", "{step}", "Steps not applied because their gradient or loss was not finite.");
    private static readonly Counter<long> Quarantines = Meter.CreateCounter<long>("batchcluster.workers.quarantined", "{quarantine}", "Workers held out of the work for misbehaving.");
    private static readonly Counter<long> TransferBytes = Meter.CreateCounter<long>("batchcluster.transfer.bytes", "By",
        "Tensor payload bytes of the steps: path=network crossed a process boundary through the coordinator's link, path=in_process was handed over by reference.");
    private static readonly Gauge<long> BusiestLinkBytes = Meter.CreateGauge<long>("batchcluster.link.busiest.bytes", "By", "Tensor payload bytes through the busiest worker's link in the last step, both directions.");
    private static readonly Counter<long> Checkpoints = Meter.CreateCounter<long>("batchcluster.checkpoints", "{checkpoint}", "Checkpoints written.");

    // A worker (node --role worker, and the local cluster's workers).
    private static readonly Histogram<double> ShareDuration = Meter.CreateHistogram("batchcluster.worker.share.duration", "s",
        "Compute time of a share (forward and backward over its samples) on this worker.", advice: DurationAdvice);
    private static readonly Gauge<double> ComputeSpeed = Meter.CreateGauge<double>("batchcluster.worker.compute.speed", "{sample}/s", "Samples per second of this worker's last share.");

    private static readonly KeyValuePair<string, object?> Network = new("path", "network");
    private static readonly KeyValuePair<string, object?> InProcess = new("path", "in_process");
    private static readonly KeyValuePair<string, object?>[] Phases =
        [new("phase", "compute"), new("phase", "transfer"), new("phase", "update"), new("phase", "wait")];

    /// <summary>When the last checkpoint was written (Stopwatch ticks; 0: none yet in this process).</summary>
    private static long _lastCheckpointAt;

    static TrainingMetrics()
    {
        Meter.CreateObservableGauge("batchcluster.checkpoint.age", CheckpointAge, "s", "Seconds since the last checkpoint was written (absent before the first).");
    }

    private static IEnumerable<Measurement<double>> CheckpointAge()
    {
        long at = Volatile.Read(ref _lastCheckpointAt);
        return at == 0 ? [] : [new Measurement<double>(Stopwatch.GetElapsedTime(at).TotalSeconds)];
    }

    /// <summary>A run starts in this process: the previous run's checkpoints are not its own.</summary>
    public static void RunStarted() => Volatile.Write(ref _lastCheckpointAt, 0);

    public static void StepCompleted(StepRecord step)
    {
        Steps.Add(1);
        Samples.Add(step.GlobalBatch);
        var t = step.Timing;
        StepDuration.Record(t.StepMs / 1000);
        if (StepPhaseTime.Enabled)
        {
            StepPhaseTime.Add(t.ComputeMs / 1000, Phases[0]);
            StepPhaseTime.Add(t.TransferMs / 1000, Phases[1]);
            StepPhaseTime.Add(t.UpdateMs / 1000, Phases[2]);
            StepPhaseTime.Add(t.WaitMs / 1000, Phases[3]);
        }
        Throughput.Record(step.SamplesPerSecond);
        Loss.Record(step.Loss);
        GlobalBatch.Record(step.GlobalBatch);
        if (double.IsFinite(step.NoiseScale.BSimple)) NoiseScale.Record(step.NoiseScale.BSimple);
        if (step.BytesMoved > 0) TransferBytes.Add(step.BytesMoved, Network);
        if (step.BytesHandedOver > 0) TransferBytes.Add(step.BytesHandedOver, InProcess);
        if (step.WorkerLinkBytes is long busiest) BusiestLinkBytes.Record(busiest);
    }

    public static void WorkersChanged(int ready) => WorkersReady.Record(ready);

    public static void Replanned() => Replans.Add(1);

    public static void Stalled() => Stalls.Add(1);

    public static void StepSkipped() => SkippedSteps.Add(1);

    public static void Quarantined() => Quarantines.Add(1);

    public static void Validated(double accuracy) => ValidationAccuracy.Record(accuracy);

    public static void CheckpointWritten()
    {
        Checkpoints.Add(1);
        Volatile.Write(ref _lastCheckpointAt, Stopwatch.GetTimestamp());
    }

    /// <summary>A worker computed a share of <paramref name="samples"/> samples in <paramref name="computeMs"/>.</summary>
    public static void ShareComputed(int samples, double computeMs)
    {
        ShareDuration.Record(computeMs / 1000);
        if (computeMs > 0) ComputeSpeed.Record(samples / (computeMs / 1000));
    }
}
