using System.CommandLine;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Diagnostics;

namespace BatchCluster.Cli.Commands;

/// <summary><c>batchcluster train</c>: one run on the local simulated cluster or the plain loop.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var options = new TrainOptions();
        var metrics = new MetricsOptions();
        var traceSteps = Opt.Text("trace-steps", "write a timeline of every step's phases on every thread to FILE (Chrome trace JSON: open it in ui.perfetto.dev or chrome://tracing; docs/performance.md)", "FILE");
        var command = new Command("train", "one training run: the local simulated cluster of worker actors, or the single-process reference loop (--engine plain)");
        options.AddTo(command);
        foreach (var option in metrics.All) command.Options.Add(option);
        command.Options.Add(traceSteps);
        command.SetAction(async (r, cancellation) =>
        {
            var config = options.ToConfig(r);
            string? tracePath = r.GetValue(traceSteps);
            if (tracePath is not null)
            {
                OutputPaths.CheckFile("--trace-steps", tracePath, exampleName: "trace.json");
                StepTrace.Start();
            }
            try
            {
                using var endpoint = metrics.Start(r, "train");
                return await RunAsync(config, cancellation);
            }
            finally
            {
                if (tracePath is not null) WriteTrace(tracePath);
            }
        });
        return command;
    }

    /// <summary>
    /// Written whatever the run's end: a failed or interrupted run's timeline is the one worth reading. A trace that cannot
    /// be written (the disk filled during the run) is a warning: the run's own outcome and exit code stand.
    /// </summary>
    private static void WriteTrace(string tracePath)
    {
        try
        {
            var (written, dropped) = StepTrace.StopAndWrite(tracePath);
            Console.Error.WriteLine($"batchcluster: step trace: {written} spans in {Path.GetFullPath(tracePath)}"
                                    + (dropped > 0 ? $" ({dropped} more not kept: the trace holds the first {written})" : ""));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"batchcluster: warning: the step trace could not be written to {Path.GetFullPath(tracePath)} ({e.Message.TrimEnd('.')}); the run itself is unaffected");
        }
    }

    private static Task<int> RunAsync(Core.Training.TrainingConfig config, CancellationToken cancellation)
    {
        if (config.TransferPrecision != Core.Training.TransferPrecision.Fp32)
            throw new UsageException("--transfer-precision applies to workers in other processes (node --role coordinator); the workers of 'train' share fp32 arrays in one process");
        if (config.Reduce == Core.Training.ReduceTopology.Ring)
            throw new UsageException("--reduce ring reduces around worker processes (node --role coordinator, scripts/run-cluster.sh, scripts/run-hosts.sh); the workers of 'train' are one process and meet in memory");
        int largestShare = config.Engine == Core.Training.Engine.Plain ? config.GlobalBatch : (config.GlobalBatch + config.Workers - 1) / config.Workers;
        if (config.MicroBatch is int micro && micro > largestShare)
            Console.Error.WriteLine($"batchcluster: warning: --micro-batch {micro} is larger than every share ({largestShare} samples at most with "
                                    + $"{config.Workers} workers and --global-batch {config.GlobalBatch}): each share is computed whole, as without it");
        var host = RunHost.Prepare(config);
        return host.RunAsync(config.Engine.ToString().ToLowerInvariant(), config.Workers,
            (events, onStep) => Engines.RunAsync(config, host.Data, host.Initial, events, host.LogPath, onStep, cancellation, host.ResumeFrom));
    }
}
