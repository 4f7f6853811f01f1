using BatchCluster.Core.Diagnostics;
using Serilog;
using Serilog.Events;

namespace BatchCluster.Core.Training;

/// <summary>
/// The event log's schema in code: every event analysis reads is written here and nowhere else,
/// with an <c>EventType</c> property and typed properties. docs/log-schema.md documents it;
/// changing a name or meaning here is an interface change (bump <see cref="SchemaVersion"/>).
/// </summary>
/// <param name="logFailures">Hears the event log's file fail (RunLogging wires it); null where nothing is written to disk.</param>
public sealed class RunEvents(ILogger logger, string runId, EventLogFailures? logFailures = null)
{
    public const int SchemaVersion = 16;
    public const string EventTypeProperty = "EventType";

    public string RunId { get; } = runId;

    /// <summary>Why the event log lost an event, once it has; null while it is whole (the run then stops: TrainingSession).</summary>
    public string? LogFailure => logFailures?.Reason;

    private ILogger For(string eventType) =>
        logger.ForContext(EventTypeProperty, eventType).ForContext("RunId", RunId);

    public void RunStarted(TrainingConfig config, string engine, int workers, int parameterCount, int trainSamples, int stepsPerEpoch, long totalSteps, int threads)
    {
        TrainingMetrics.RunStarted();
        For("RunStarted").ForContext("SchemaVersion", SchemaVersion).ForContext("Config", config, destructureObjects: true).Information(
            "Run {RunId} started: {Engine} engine, {Workers} workers, model {Model} with {ParameterCount} parameters, {TrainSamples} training samples, global batch {GlobalBatch}, {StepsPerEpoch} steps per epoch, {TotalSteps} steps, {Threads} torch threads, CPU kernels {CpuKernels}, batch norm over {Normalisation}",
            RunId, engine, workers, config.Model.ToString(), parameterCount, trainSamples, config.GlobalBatch, stepsPerEpoch, totalSteps, threads,
            Native.MklDispatch.Kernels, config.Normalisation);
    }

    /// <param name="transport">How its tensors travel: <c>in-process</c>, <c>data plane HOST:PORT (fp32|bf16)</c> or <c>akka</c>.</param>
    public void WorkerJoined(string workerId, string address, string device, int threads, double samplesPerSecond, int readyWorkers, string transport = "in-process")
    {
        TrainingMetrics.WorkersChanged(readyWorkers);
        For("WorkerJoined").Information(
            "Worker {WorkerId} joined from {WorkerAddress}: {Device}, {Threads} torch threads, {MeasuredSamplesPerSecond:F0} samples/s measured, tensors {Transport}; {ReadyWorkers} workers ready",
            workerId, address, device, threads, samplesPerSecond, transport, readyWorkers);
    }

    public void WorkerLeft(string workerId, string reason, int readyWorkers)
    {
        TrainingMetrics.WorkersChanged(readyWorkers);
        For("WorkerLeft").Warning("Worker {WorkerId} left ({Reason}); {ReadyWorkers} workers ready", workerId, reason, readyWorkers);
    }

    /// <summary>
    /// The coordinator's node downed a worker node that stayed unreachable while the rest of the cluster answered
    /// (docs/robustness.md, "Broken links"): a decision about the node, logged beside the <c>WorkerLeft</c> of its workers.
    /// </summary>
    /// <param name="reason">What the rule saw: unreachable for 4 s, or its connection dropped 3 times within 10 s.</param>
    public void WorkerNodeDowned(long step, string nodeAddress, string reason) =>
        For("WorkerNodeDowned").Warning(
            "Worker node {NodeAddress} downed before step {Step}: {Reason} while the rest of the cluster answered (a link it broke must not take the coordinator down with it)",
            nodeAddress, step, reason);

    /// <summary>
    /// A worker is held out of the work for misbehaving (docs/robustness.md, "Quarantine"). It is named by what the
    /// coordinator knows of it — its key in the roster and the actor's address as the transport saw it — not by the id
    /// it chose for itself (given too, as a claim).
    /// </summary>
    /// <param name="nth">Which quarantine of this worker it is; after the limit the worker is expelled instead (WorkerLeft).</param>
    public void WorkerQuarantined(long step, int workerKey, string actorAddress, string claimedId, string reason, int nth, int limit, double seconds)
    {
        TrainingMetrics.Quarantined();
        For("WorkerQuarantined").Warning(
            "Worker #{WorkerKey} at {ActorAddress} (calls itself {ClaimedId}) quarantined at step {Step} for {QuarantineSeconds:G3} s, quarantine {Nth} of {QuarantineLimit}: {Reason}",
            workerKey, actorAddress, claimedId, step, seconds, nth, limit, reason);
    }

    /// <summary>
    /// A quarantined worker gets work again from the next round: its back-off has passed, or it was pardoned (the shares
    /// it was blamed for were as bad when others computed them: the fault followed the model, and the quarantine does not count).
    /// </summary>
    public void WorkerReleased(long step, int workerKey, string actorAddress, int readyWorkers, bool pardoned)
    {
        TrainingMetrics.WorkersChanged(readyWorkers);
        For("WorkerReleased").Information(
            "Worker #{WorkerKey} at {ActorAddress} released from quarantine at step {Step} ({Why}); {ReadyWorkers} workers ready",
            workerKey, actorAddress, step, pardoned ? "pardoned: the fault followed the model" : "its back-off passed", readyWorkers);
    }

    /// <summary>
    /// A worker reported a compute time its round trip, as the coordinator timed it, cannot contain: a claimed speed
    /// over <paramref name="factor"/> × what it delivered (docs/robustness.md, "Measured speeds"). Capacity shares use
    /// the delivered speed for that share. Logged once per worker.
    /// </summary>
    public void SpeedClaimIgnored(long step, int workerKey, string actorAddress, double claimedSamplesPerSecond, double deliveredSamplesPerSecond, double factor) =>
        For("SpeedClaimIgnored").Warning(
            "Worker #{WorkerKey} at {ActorAddress} claims {ClaimedSamplesPerSecond:G3} samples/s at step {Step}, over {ClaimFactor} × the {DeliveredSamplesPerSecond:G3} its round trip delivered; capacity shares use what it delivered",
            workerKey, actorAddress, claimedSamplesPerSecond, step, factor, deliveredSamplesPerSecond);

    /// <summary>
    /// A share's mean gradient is far larger or smaller than the step's others allow (docs/robustness.md, "Answers checked"):
    /// finite values of the wrong scale. <paramref name="action"/> says what was done: averaged in as computed (policy
    /// log), its worker quarantined and its samples computed again (policy quarantine), or kept because others computed
    /// those samples with the same result (the data's fault, not the worker's).
    /// </summary>
    public void ShareOutlier(long step, int place, int workerKey, string actorAddress, int samples, double meanGradientNorm,
        double medianMeanGradientNorm, double ratio, double allowed, string action) =>
        For("ShareOutlier").Warning(
            "Step {Step}: share {Place} ({Samples} samples) of worker #{WorkerKey} at {ActorAddress} has a mean gradient of norm {MeanGradientNorm:G3}, {Ratio:G3} × the step's median {MedianMeanGradientNorm:G3} (allowed {Allowed:G3}); {Action}",
            step, place, samples, workerKey, actorAddress, meanGradientNorm, ratio, medianMeanGradientNorm, allowed, action);

    /// <summary>
    /// The audit rows of an evaluation were answered differently and no majority can tell who is right (two workers):
    /// the evaluation stands as computed, but it may count a dishonest worker's rows (docs/robustness.md).
    /// </summary>
    public void EvaluationDisputed(long step, string split, int rows, string[] workers, long[] correct) =>
        For("EvaluationDisputed").Warning(
            "The {Split} evaluation after step {Step}: its {AuditRows} audit rows were answered differently by {Workers} ({Correct} correct), with no majority; the evaluation stands as computed",
            split, step, rows, workers, correct);

    public void StepReplanned(long step, string lostWorker, string reason, int[] movedSampleIds, string[] newWorkers)
    {
        TrainingMetrics.Replanned();
        For("StepReplanned").Warning(
            "Step {Step}: {MovedCount} samples of {LostWorker} ({Reason}) re-planned onto {NewWorkers}; moved ids {MovedSampleIds}",
            step, movedSampleIds.Length, lostWorker, reason, newWorkers, movedSampleIds);
    }

    public void StallReport(long step, string[] lateWorkers, double deadlineSeconds)
    {
        TrainingMetrics.Stalled();
        For("StallReport").Warning("Step {Step} missed its {DeadlineSeconds} s deadline; still waiting for {LateWorkers}", step, deadlineSeconds, lateWorkers);
    }

    public void RunPaused(long step, int readyWorkers, int minWorkers)
    {
        TrainingMetrics.WorkersChanged(readyWorkers);
        For("RunPaused").Warning("Run paused before step {Step}: {ReadyWorkers} workers ready, at least {MinWorkers} needed; waiting for workers", step, readyWorkers, minWorkers);
    }

    public void RunResumed(long step, int readyWorkers) =>
        For("RunResumed").Information("Run resumed at step {Step} with {ReadyWorkers} workers", step, readyWorkers);

    public void ResultDropped(long step, int shareIndex, string worker, string reason) =>
        For("ResultDropped").Warning("Dropped a result for step {Step} share {ShareIndex} from {Worker}: {Reason}", step, shareIndex, worker, reason);

    public void StepCompleted(StepRecord step)
    {
        TrainingMetrics.StepCompleted(step);
        WithSizing(step.WorkerLinkBytes is long busiest ? For("StepCompleted").ForContext("WorkerLinkBytes", busiest) : For("StepCompleted"), step.Sizing)
            .ForContext("FoldMs", step.FoldMs)
            .ForContext("PeakMemoryMbByNode", step.PeakMemoryMbByNode, destructureObjects: true)
            .ForContext("AllocatedBytesByNode", step.AllocatedBytesByNode ?? new Dictionary<string, long>(), destructureObjects: true).Information(
            "Step {Step} (epoch {Epoch}): loss {Loss:F4}, lr {LearningRate:G4}, grad norm {GradNorm:G4}, {GlobalBatch} samples in shares {Shares} by {ShareWorkers} (computed at {ShareSamplesPerSecond} samples/s), {StepMs:F2} ms (compute {ComputeMs:F2}, transfer {TransferMs:F2}, update {UpdateMs:F2}, wait {WaitMs:F2}), {SamplesPerSecond:F0} samples/s, {BytesMoved} bytes across processes, {BytesHandedOver} handed over in-process, peak memory {PeakMemoryMb:F0} MiB, parameter version {ParameterVersion}, B_simple {BSimple:G4} (|G|² {GradSquaredEstimate:G4}, tr Σ {TraceSigmaEstimate:G4})",
            step.Step, step.Epoch, step.Loss, step.LearningRate, step.GradNorm, step.GlobalBatch, step.Shares, step.ShareWorkers ?? [], step.ShareSamplesPerSecond ?? [], step.Timing.StepMs,
            step.Timing.ComputeMs, step.Timing.TransferMs, step.Timing.UpdateMs, step.Timing.WaitMs, step.SamplesPerSecond, step.BytesMoved,
            step.BytesHandedOver, step.PeakMemoryMb, step.ParameterVersion, step.NoiseScale.BSimple, step.NoiseScale.GradSquared, step.NoiseScale.TraceSigma);
    }

    private static ILogger WithSizing(ILogger log, BatchSizingFigures? sizing) => sizing is not { } f ? log
        : log.ForContext("LrGain", f.LrGain).ForContext("BNoise", f.NoiseScale).ForContext("StatisticalEfficiency", f.Efficiency).ForContext("Tau", f.Tau);

    /// <summary>
    /// A batch decision before step <paramref name="step"/> (docs/adaptive-batch.md): <c>BatchSizeChanged</c> when the batch changes
    /// from there on — chosen by goodput (with what the planner predicted for both batches and the terms it predicted from) or by the
    /// batch schedule (predictions NaN) — and <c>BatchSizeKept</c> when the planner kept it (the best candidate named, with its prediction).
    /// </summary>
    public void BatchSizeDecided(long step, BatchSizing.BatchDecision decision, double oldEfficiency, double newEfficiency, double newGain, string layout)
    {
        var terms = decision.Terms;
        if (decision.Changed)
            For("BatchSizeChanged").Information(
                "Global batch {OldBatch} → {NewBatch} from step {Step}: predicted goodput {OldGoodput:G4} → {NewGoodput:G4} (samples/s × efficiency {OldEfficiency:G3} → {NewEfficiency:G3}), B_noise {BNoise:G4}, lr gain {LrGain:G3}; step time model {FixedMs:G4} ms fixed (link {TransferMs:G4} ms) + {ComputeInterceptMs:G4} ms + {ComputeMsPerSample:G4} ms per sample, workers {Layout}",
                decision.Current, decision.Chosen, step, decision.CurrentGoodput, decision.ChosenGoodput, oldEfficiency, newEfficiency, decision.NoiseScale, newGain,
                terms.FixedMs, terms.TransferMs, terms.ComputeInterceptMs, terms.ComputeMsPerSample, layout);
        else
            For("BatchSizeKept").Information(
                "Global batch {Batch} kept at step {Step}: predicted goodput {Goodput:G4}, the best other {BestOtherBatch} {BestOtherGoodput:G4} (allowed: ×2 either way, 5 % better, not left within 3 decisions), B_noise {BNoise:G4}; step time model {FixedMs:G4} ms fixed (link {TransferMs:G4} ms) + {ComputeInterceptMs:G4} ms + {ComputeMsPerSample:G4} ms per sample, workers {Layout}",
                decision.Current, step, decision.CurrentGoodput, decision.BestOther, decision.BestOtherGoodput, decision.NoiseScale,
                terms.FixedMs, terms.TransferMs, terms.ComputeInterceptMs, terms.ComputeMsPerSample, layout);
    }

    /// <summary>A ring of worker processes was formed (docs/architecture.md, "The ring"): the first, or a new one after the members changed or a fault.</summary>
    /// <param name="members">Worker ids in ring order: each sends to the next, the last to the first.</param>
    public void RingFormed(long step, int generation, long epoch, string[] members, int chunkValues, string reason) =>
        For("RingFormed").Information(
            "Ring {Epoch} formed for step {Step} (generation {Generation}) of {MemberCount} members in the order {RingMembers}, chunks of {ChunkValues} values: {Reason}",
            epoch, step, generation, members.Length, members, chunkValues, reason);

    /// <summary>A ring reduction was abandoned before its step committed (a member lost or failing); the step's parameters are those of the last commit.</summary>
    public void ReductionAborted(long step, int generation, string reason) =>
        For("ReductionAborted").Warning("Ring reduction of step {Step} (generation {Generation}) abandoned: {Reason}", step, generation, reason);

    /// <summary>A step that was not applied: its loss or mean gradient holds a NaN or an infinity.</summary>
    /// <param name="workers">Whose shares held non-finite values (empty when only their sum overflowed).</param>
    public void NonFiniteGradient(long step, string[] workers, double loss, double gradNorm, int badStepsInARow, int maxBadSteps)
    {
        TrainingMetrics.StepSkipped();
        For("NonFiniteGradient").Warning(
            "Step {Step} skipped: loss {Loss:G4}, grad norm {GradNorm:G4} are not finite (shares of {NonFiniteWorkers}); {BadStepsInARow} of at most {MaxBadSteps} such steps in a row",
            step, loss, gradNorm, workers, badStepsInARow, maxBadSteps);
    }

    /// <param name="trainAccuracy">On validation events: the training subset's accuracy at the same step (NaN when not measured).</param>
    public void EvalCompleted(long step, double epoch, string split, Models.EvaluationResult result, double trainAccuracy)
    {
        if (split == "validation") TrainingMetrics.Validated(result.Accuracy);
        var log = For("EvalCompleted");
        if (double.IsNaN(trainAccuracy))
            log.Information(
                "Evaluation after step {Step} (epoch {Epoch:F2}) on {Split}: loss {Loss:F4}, accuracy {Accuracy:P2} over {Samples} samples",
                step, epoch, split, result.MeanLoss, result.Accuracy, result.Count);
        else
            log.Information(
                "Evaluation after step {Step} (epoch {Epoch:F2}) on {Split}: loss {Loss:F4}, accuracy {Accuracy:P2} over {Samples} samples; train accuracy {TrainAccuracy:P2}, generalization gap {GeneralizationGap:F4}",
                step, epoch, split, result.MeanLoss, result.Accuracy, result.Count, trainAccuracy, trainAccuracy - result.Accuracy);
    }

    public void TargetReached(long step, double epoch, double accuracy, double target) =>
        For("TargetReached").Information(
            "Validation accuracy {Accuracy:P2} reached the target {TargetAccuracy:P2} after step {Step} (epoch {Epoch:F2}); the run stops here",
            accuracy, target, step, epoch);

    public void RunCompleted(RunSummary summary, double wallSeconds) =>
        For("RunCompleted").ForContext("Summary", summary, destructureObjects: true).Information(
            "Run {RunId} completed: {Steps} steps, validation accuracy {ValAccuracy:P2}, test accuracy {TestAccuracy:P2}, {SamplesPerSecond:F0} samples/s, {WallSeconds:F1} s",
            RunId, summary.Steps, summary.ValidationAccuracy, summary.TestAccuracy, summary.SamplesPerSecond, wallSeconds);

    public void CheckpointWritten(long step, string path, long bytes, double milliseconds)
    {
        TrainingMetrics.CheckpointWritten();
        For("CheckpointWritten").Information("Checkpoint before step {Step} written to {CheckpointPath} ({Bytes} bytes, {Milliseconds:F1} ms)", step, path, bytes, milliseconds);
    }

    public void ResumedFromCheckpoint(long step, int epoch, int indexInEpoch, string path, IReadOnlyList<string> skippedDamaged) =>
        For("ResumedFromCheckpoint").Information(
            "Resuming at step {Step} (epoch {Epoch}, batch {IndexInEpoch} of the epoch) from {CheckpointPath}; damaged checkpoints skipped: {SkippedCheckpoints}",
            step, epoch, indexInEpoch, path, skippedDamaged);

    /// <summary>The terminal event of a failed run; a <see cref="RunFailedException"/> adds the last committed step and the checkpoint to resume from.</summary>
    public void RunFailed(Exception error)
    {
        if (error is RunFailedException failed)
            For("RunFailed").ForContext("LastCommittedStep", failed.LastCommittedStep).ForContext("Checkpoint", failed.Checkpoint).Write(
                LogEventLevel.Error, error.InnerException, "Run {RunId} failed: {Error}", RunId, failed.Message);
        else
            For("RunFailed").Write(LogEventLevel.Error, error, "Run {RunId} failed: {Error}", RunId, error.Message);
    }

    /// <summary>The terminal event of a run stopped on request (SIGTERM, SIGINT).</summary>
    public void RunInterrupted(long lastCommittedStep, string reason, string? checkpoint, string? checkpointError, double wallSeconds) =>
        For("RunInterrupted").ForContext("CheckpointError", checkpointError).Warning(
            "Run {RunId} interrupted ({Reason}) after step {LastCommittedStep}; checkpoint {Checkpoint}; {WallSeconds:F1} s",
            RunId, reason, lastCommittedStep, checkpoint, wallSeconds);

    /// <summary>The coordinator failed and is being rebuilt from the newest intact checkpoint (node mode with checkpoints).</summary>
    public void CoordinatorRecovering(Exception error, long lastCommittedStep, int attempt, int maxAttempts) =>
        For("CoordinatorRecovering").Write(LogEventLevel.Error, error,
            "The coordinator failed after step {LastCommittedStep} ({Error}); recovering from the newest checkpoint, attempt {Attempt} of {MaxAttempts}",
            lastCommittedStep, error.Message, attempt, maxAttempts);
}

/// <summary>The properties of one StepCompleted event.</summary>
/// <summary>A step's batch-sizing figures (docs/adaptive-batch.md), where the run estimates noise or its batch varies.</summary>
/// <param name="LrGain">AdaScale's gain in the step's learning rate (1 without AdaScale).</param>
/// <param name="NoiseScale">B_noise from the batch-scaled smoothed estimates, after this step.</param>
/// <param name="Efficiency">The statistical efficiency E(M) of this step's batch, after this step.</param>
/// <param name="Tau">Scale-invariant iterations done, this step included.</param>
public readonly record struct BatchSizingFigures(double LrGain, double NoiseScale, double Efficiency, double Tau);

public sealed record StepRecord(
    long Step, int Epoch, int GlobalBatch, int[] Shares, double Loss, double LearningRate, double GradNorm,
    StepTiming Timing, double SamplesPerSecond, long ParameterVersion, Gradients.NoiseScaleEstimate NoiseScale,
    long BytesMoved, IReadOnlyDictionary<string, double> PeakMemoryMbByNode, double[]? ShareSamplesPerSecond = null,
    IReadOnlyDictionary<string, long>? AllocatedBytesByNode = null, string[]? ShareWorkers = null, long? WorkerLinkBytes = null,
    long BytesHandedOver = 0, double FoldMs = 0, BatchSizingFigures? Sizing = null)
{
    /// <summary>The largest node's peak (NaN when no node reported).</summary>
    public double PeakMemoryMb => PeakMemoryMbByNode.Count == 0 ? double.NaN : PeakMemoryMbByNode.Values.Max();
}
