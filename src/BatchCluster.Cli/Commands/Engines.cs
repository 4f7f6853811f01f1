using BatchCluster.Cluster.Local;
using BatchCluster.Core.Checkpoints;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Commands;

/// <summary>Dispatches a run to the chosen engine.</summary>
public static class Engines
{
    public static Task<RunResult> RunAsync(TrainingConfig config, DataSplits data, float[] initialParameters, RunEvents events, string logPath,
        Action<StepRecord, TrainingSession>? onStep, CancellationToken cancellation, CheckpointState? resumeFrom = null) => config.Engine switch
    {
        Engine.Plain => Task.Run(() => PlainTrainer.Run(config, data, initialParameters, events, logPath, onStep, cancellation, resumeFrom,
            Gpu.ComputeBackends.ReplicasFor(config.Device)), cancellation),
        _ => LocalCluster.RunAsync(config, data, initialParameters, events, logPath, onStep, cancellation, resumeFrom),
    };
}
