using Akka.Actor;
using Akka.Configuration;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Local;

/// <summary>
/// The local simulated cluster: one ActorSystem holding one coordinator (under its
/// <see cref="RunSupervisor"/>) and N worker actors, no remoting. The same actors and protocol as
/// the multi-node cluster (workers register, are accepted, report ready), bootstrapped in one
/// process with the data set shared in memory. Tensors pass between the actors without a copy,
/// which is why buffer ownership (TrainingProtocol) matters most here.
/// </summary>
public static class LocalCluster
{
    public static Config AkkaConfig { get; } = ClusterConfigFiles.Load("common.hocon");

    /// <summary>
    /// The actor system's settings for <paramref name="workers"/> workers computing on <paramref name="device"/> with
    /// <paramref name="cores"/> cores. Each worker normally has a thread of its own (common.hocon); with more TorchSharp CPU
    /// workers than cores they share one thread per core instead: each thread then computes its workers' shares one after the
    /// other rather than the kernel slicing 4 threads over 2 cores (measured with 4 workers on 2 cores: ~8 % less CPU per
    /// step, docs/performance.md). A share is one message, so a worker's TorchSharp scopes never cross threads. Devices keep
    /// their own threads (a GPU context is bound to the thread that made it).
    /// </summary>
    public static Config AkkaConfigFor(int workers, string device, int cores)
    {
        if (device != "cpu" || workers <= cores) return AkkaConfig;
        return ConfigurationFactory.ParseString($$"""
            batchcluster.worker-dispatcher {
              type = ForkJoinDispatcher
              throughput = 1
              dedicated-thread-pool { thread-count = {{cores}} }
            }
            """).WithFallback(AkkaConfig);
    }

    /// <summary>Makes the props of worker <c>index</c> from the coordinator's entry and the worker settings (tests inject faults here).</summary>
    public delegate Props WorkerFactory(int index, IActorRef coordinator, WorkerSettings settings);

    public static WorkerFactory RealWorkers { get; } = (_, coordinator, settings) => WorkerActor.Props(coordinator, settings);

    /// <param name="cancellation">Ends the run cleanly (checkpoint, RunInterrupted): the task then fails with <see cref="RunInterruptedException"/>.</param>
    public static async Task<RunResult> RunAsync(TrainingConfig config, DataSplits data, float[] initialParameters, RunEvents events,
        string logPath, Action<StepRecord, TrainingSession>? onStep = null, CancellationToken cancellation = default,
        Core.Checkpoints.CheckpointState? resumeFrom = null, WorkerFactory? workers = null)
    {
        if (config.Workers <= 0) throw new ArgumentOutOfRangeException(nameof(config), $"workers {config.Workers} must be positive");
        var system = ActorSystem.Create("batchcluster-local", AkkaConfigFor(config.Workers, config.Device, Environment.ProcessorCount));
        try
        {
            var completion = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            // Start once all workers are ready; go on while at least one is (a worker actor that dies
            // loses its share to the others, it does not stop the run).
            var settings = new CoordinatorSettings(StartWorkers: config.Workers, MinWorkers: 1, TimeSpan.FromSeconds(config.StepDeadlineSeconds),
                RunSpecs.Of(config), data.Validation.Count, data.Test.Count, WatchClusterMembership: false,
                config.TrainEvaluationCount(data.Train.Count));
            var run = new CoordinatorRun(() => new TrainingSession(config, data.Train.Count, initialParameters, events, resumeFrom),
                RecoveredSession: null, settings, logPath, completion, onStep);
            var coordinator = system.ActorOf(RunSupervisor.Props(run), "run");
            await using var registration = cancellation.Register(() => coordinator.Tell(new CoordinatorActor.Interrupt("stop requested")));
            var workerSettings = new WorkerSettings(Gpu.ComputeBackends.NameOf(config.Device), config.EffectiveThreads, _ => data, RegisterAgainWhenCoordinatorStops: false,
                CreateReplica: Gpu.ComputeBackends.ReplicasFor(config.Device));
            var factory = workers ?? RealWorkers;
            for (int i = 0; i < config.Workers; i++)
                system.ActorOf(factory(i, coordinator, workerSettings), $"worker-{i}");
            return await completion.Task.ConfigureAwait(false);
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }
}
