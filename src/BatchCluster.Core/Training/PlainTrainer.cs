using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;

namespace BatchCluster.Core.Training;

/// <summary>
/// The reference loop (--engine plain): the same model, sampler, optimizer and LR rule as the
/// cluster, in one thread with no actors. The yardstick for correctness and for overhead.
/// </summary>
public static class PlainTrainer
{
    /// <param name="createReplica">The compute backend (null: TorchSharp on the CPU).</param>
    public static RunResult Run(TrainingConfig config, DataSplits data, float[] initialParameters, RunEvents events, string logPath,
        Action<StepRecord, TrainingSession>? onStep = null, CancellationToken cancellation = default, Checkpoints.CheckpointState? resumeFrom = null,
        Func<ModelSpec, IModelReplica>? createReplica = null)
    {
        using var replica = createReplica?.Invoke(config.Model) ?? new ModelReplica(config.Model);
        var session = new TrainingSession(config, data.Train.Count, initialParameters, events, resumeFrom);
        try
        {
            return Train(config, data, replica, session, logPath, onStep, cancellation);
        }
        catch (Exception e) when (e is not (RunInterruptedException or RunFailedException or OperationCanceledException))
        {
            // Like the coordinator: a failure ends the run with the last committed step and the checkpoint to resume from.
            throw session.Failure($"the plain loop failed: {e.Message}", e);
        }
    }

    private static RunResult Train(TrainingConfig config, DataSplits data, IModelReplica replica, TrainingSession session, string logPath,
        Action<StepRecord, TrainingSession>? onStep, CancellationToken cancellation)
    {
        var gradientSum = new float[replica.ParameterCount];
        // A run that needs the gradient noise (adaptive batch, AdaScale) computes each batch as two halves, each with its norm: one
        // gradient gives no estimate (GradientNoiseScale). The sum of the halves is the batch's, exactly as shares are.
        bool halves = config.NeedsNoiseEstimate;
        var secondHalf = halves ? new float[replica.ParameterCount] : [];
        if (config.BnBatch is int ghost) replica.UseGhostBatches(ghost);
        int granule = config.ShareGranule;
        var one = new ShareGradient[1];
        var two = new ShareGradient[2];
        int trainEvalCount = config.TrainEvaluationCount(data.Train.Count);
        EvaluationResult? EvaluateTrainSubset() => trainEvalCount > 0 ? replica.Evaluate(data.Train, 0, trainEvalCount) : null;
        void LoadModel()
        {
            replica.LoadParameters(session.Parameters);
            if (config.BnBatch is not null) replica.LoadRunningStatistics(session.RunningStatistics);
        }
        var allocation = new AllocationMeter();
        while (!session.Finished)
        {
            // Between steps the state is exactly the last commit: checkpoint it and end the log cleanly.
            if (cancellation.IsCancellationRequested) throw session.Interrupt("stop requested");
            var batch = session.NextBatch();
            double startedAt = session.NowMs;
            using (StepTrace.Time(StepPhase.LoadParameters, batch.Step)) replica.LoadParameters(session.Parameters);
            ShareGradient[] shares;
            int half = ShareHalves.FirstHalf(batch.Size, granule); // halves of whole ghost batches
            using (StepTrace.Time(StepPhase.Compute, batch.Step))
            {
                if (halves && half > 0)
                {
                    var ids = batch.SampleIds.AsSpan();
                    two[0] = replica.ComputeGradientSum(data.Train, ids[..half], config.EffectiveMicroBatch(half), gradientSum);
                    two[1] = replica.ComputeGradientSum(data.Train, ids[half..], config.EffectiveMicroBatch(batch.Size - half), secondHalf);
                    shares = two;
                }
                else
                {
                    one[0] = replica.ComputeGradientSum(data.Train, batch.SampleIds, config.EffectiveMicroBatch(batch.Size), gradientSum);
                    shares = one;
                }
            }
            double computeMs = 0;
            foreach (var share in shares) computeMs += share.ComputeMilliseconds; // one after the other
            // One process, nothing sent: no transfer, no bytes moved.
            var measured = new StepMeasurements(computeMs, 0, 0, new Dictionary<string, double> { ["local"] = PeakMemory.Megabytes },
                new Dictionary<string, long> { ["local"] = allocation.Report() });
            if (session.Commit(batch, shares, measured, startedAt) is { } record) onStep?.Invoke(record, session);
            if (session.ValidationDue)
            {
                LoadModel();
                if (EvaluateTrainSubset() is { } train) session.RecordEvaluation(DataSplit.Train, train);
                session.RecordEvaluation(DataSplit.Validation, replica.Evaluate(data.Validation, 0, data.Validation.Count));
            }
        }
        LoadModel();
        var finalTrain = EvaluateTrainSubset();
        var validation = replica.Evaluate(data.Validation, 0, data.Validation.Count);
        var test = replica.Evaluate(data.Test, 0, data.Test.Count);
        var summary = session.Complete(finalTrain, validation, test, workers: 1, logPath);
        return new RunResult(summary, session.Parameters.ToArray(), config.BnBatch is null ? null : session.RunningStatistics.ToArray());
    }
}
