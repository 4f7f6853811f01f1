using BatchCluster.Cluster.Local;
using BatchCluster.Core.Checkpoints;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Commands;

/// <summary>Loads a run's data and dispatches it to the chosen engine.</summary>
public static class Engines
{
    /// <summary>The configured data set; a missing or bad real data set is an error, never replaced by synthetic data.</summary>
    public static DataSplits LoadData(TrainingConfig config) =>
        DataSource.Load(config.Dataset, config.DataDirectory, config.ValidationSize, config.Seed);

    public static Task<RunResult> RunAsync(TrainingConfig config, DataSplits data, float[] initialParameters, RunEvents events, string logPath,
        Action<StepRecord, TrainingSession>? onStep, CancellationToken cancellation, CheckpointState? resumeFrom = null) => config.Engine switch
    {
        Engine.Plain => Task.Run(() => PlainTrainer.Run(config, data, initialParameters, events, logPath, onStep, cancellation, resumeFrom), cancellation),
        _ => LocalCluster.RunAsync(config, data, initialParameters, events, logPath, onStep, cancellation, resumeFrom),
    };
}
