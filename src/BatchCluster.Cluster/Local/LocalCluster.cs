using Akka.Actor;
using Akka.Configuration;
using BatchCluster.Cluster.Actors;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Local;

/// <summary>
/// The local simulated cluster: one ActorSystem holding one coordinator and N worker actors, no
/// remoting. The same actors as the multi-node cluster, bootstrapped in one process.
/// </summary>
public static class LocalCluster
{
    public static Config AkkaConfig { get; } = LoadEmbeddedConfig();

    public static async Task<RunResult> RunAsync(TrainingConfig config, DataSplits data, float[] initialParameters, RunEvents events,
        string logPath, Action<StepRecord, TrainingSession>? onStep = null, CancellationToken cancellation = default)
    {
        if (config.Workers <= 0) throw new ArgumentOutOfRangeException(nameof(config), $"workers {config.Workers} must be positive");
        var session = new TrainingSession(config, data.Train.Count, initialParameters, events);
        var system = ActorSystem.Create("batchcluster-local", AkkaConfig);
        try
        {
            var workers = new List<IActorRef>();
            for (int i = 0; i < config.Workers; i++)
            {
                var worker = system.ActorOf(WorkerActor.Props(data, config.Model), $"worker-{i}");
                workers.Add(worker);
                events.WorkerJoined(i, worker.Path.ToString(), config.EffectiveThreads);
            }
            var completion = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var registration = cancellation.Register(() => completion.TrySetCanceled(cancellation));
            system.ActorOf(CoordinatorActor.Props(session, config, data, workers, logPath, completion, onStep), "coordinator");
            return await completion.Task.ConfigureAwait(false);
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }

    private static Config LoadEmbeddedConfig()
    {
        using var stream = typeof(LocalCluster).Assembly.GetManifestResourceStream("BatchCluster.Cluster.local.hocon")
            ?? throw new InvalidOperationException("embedded cluster-config/local.hocon is missing from the build");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }
}
