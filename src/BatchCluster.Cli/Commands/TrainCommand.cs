using BatchCluster.Cli.Options;
using BatchCluster.Cli.Output;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;
using Serilog;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster train</c>: one run on the local simulated cluster or the plain loop. Every input
/// is checked before the run directory is created, so bad input leaves nothing behind.
/// </summary>
public static class TrainCommand
{
    public static async Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        var config = TrainOptions.Parse(new FlagSet(args, TrainOptions.Flags, "train"));
        string runId = config.RunId ?? RunLogging.NewRunId(config);
        string runDirectory = RunLogging.CheckNewRunDirectory(config.RunsDirectory, runId);
        if (config.ExportParams is string export && Path.GetDirectoryName(Path.GetFullPath(export)) is string exportDir && !Directory.Exists(exportDir))
            throw new UsageException($"--export-params: directory {exportDir} does not exist; create it first");

        var data = Engines.LoadData(config);
        if (config.GlobalBatch > data.Train.Count)
            throw new UsageException($"--global-batch {config.GlobalBatch} is larger than the {data.Train.Count} training samples; use a smaller global batch");
        var sampler = new EpochSampler(data.Train.Count, config.GlobalBatch, config.Seed, config.Shuffle);
        TorchRuntime.Initialise(config.EffectiveThreads);
        var layout = ModelFactory.LayoutOf(config.Model);
        float[] initial = config.InitParams is string init
            ? ParameterFile.Read(init, layout.TotalCount)
            : ModelFactory.InitialParameters(config.Model, config.Seed);

        string logPath = Path.Combine(runDirectory, RunLogging.EventLogFileName);
        var progress = ProgressDisplay.ForConsole();
        using var logger = RunLogging.Create(runDirectory, progress.LogWriter);
        Log.Logger = logger; // Akka's own log events reach Serilog through the static logger.
        var events = new RunEvents(logger, runId);
        events.RunStarted(config, config.Engine.ToString().ToLowerInvariant(), config.Workers, layout.TotalCount, data.Train.Count,
            sampler.StepsPerEpoch, config.TotalSteps(sampler.StepsPerEpoch), config.EffectiveThreads);
        try
        {
            var result = await Engines.RunAsync(config, data, initial, events, logPath, progress.Report, cancellation);
            if (config.ExportParams is string exportPath)
                ParameterFile.Write(exportPath, result.FinalParameters);
            logger.Dispose();
            Log.Logger = Serilog.Core.Logger.None;
            Console.Out.WriteLine(SummaryLine.Format(result.Summary));
            return 0;
        }
        catch (Exception e)
        {
            events.RunFailed(e);
            throw;
        }
    }
}
