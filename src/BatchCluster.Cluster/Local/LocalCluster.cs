using Akka.Actor;
using Akka.Configuration;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Local;

/// <summary>
/// The local simulated cluster: one ActorSystem holding one coordinator and N worker actors, no
/// remoting. The same actors and protocol as the multi-node cluster (workers register, are accepted,
/// report ready), bootstrapped in one process with the data set shared in memory.
/// </summary>
public static class LocalCluster
{
    public static Config AkkaConfig { get; } = ClusterConfigFiles.Load("common.hocon");

    public static async Task<RunResult> RunAsync(TrainingConfig config, DataSplits data, float[] initialParameters, RunEvents events,
        string logPath, Action<StepRecord, TrainingSession>? onStep = null, CancellationToken cancellation = default,
        Core.Checkpoints.CheckpointState? resumeFrom = null)
    {
        if (config.Workers <= 0) throw new ArgumentOutOfRangeException(nameof(config), $"workers {config.Workers} must be positive");
        var session = new TrainingSession(config, data.Train.Count, initialParameters, events, resumeFrom);
        var system = ActorSystem.Create("batchcluster-local", AkkaConfig);
        try
        {
            var completion = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var registration = cancellation.Register(() => completion.TrySetCanceled(cancellation));
            var settings = new CoordinatorSettings(config.Workers, TimeSpan.FromSeconds(config.StepDeadlineSeconds), RunSpecs.Of(config),
                data.Validation.Count, data.Test.Count, WatchClusterMembership: false,
                config.TrainEvaluationCount(data.Train.Count));
            var coordinator = system.ActorOf(CoordinatorActor.Props(session, config, settings, logPath, completion, onStep), "coordinator");
            var workerSettings = new WorkerSettings("cpu", config.EffectiveThreads, _ => data);
            for (int i = 0; i < config.Workers; i++)
                system.ActorOf(WorkerActor.Props(coordinator, workerSettings), $"worker-{i}");
            return await completion.Task.ConfigureAwait(false);
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }
}
