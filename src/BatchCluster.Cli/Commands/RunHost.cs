using BatchCluster.Cli.Options;
using BatchCluster.Cli.Output;
using BatchCluster.Core.Checkpoints;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;
using Serilog;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// What every command that runs training shares (train, node --role coordinator): every input is
/// checked before the run directory is created, so bad input leaves nothing behind; then the run
/// log is opened, RunStarted written, the engine run, the parameters exported and the summary
/// line printed last.
/// </summary>
public sealed class RunHost
{
    private RunHost(TrainingConfig config, string runId, string runDirectory, DataSplits data, float[] initial, int stepsPerEpoch,
        CheckpointState? resumeFrom, string? resumePath, IReadOnlyList<string> skippedCheckpoints)
    {
        ResumeFrom = resumeFrom;
        _resumePath = resumePath;
        _skippedCheckpoints = skippedCheckpoints;
        Config = config;
        RunId = runId;
        RunDirectory = runDirectory;
        Data = data;
        Initial = initial;
        StepsPerEpoch = stepsPerEpoch;
    }

    public TrainingConfig Config { get; }
    public string RunId { get; }
    public string RunDirectory { get; }
    public string LogPath => Path.Combine(RunDirectory, RunLogging.EventLogFileName);
    public DataSplits Data { get; }
    public float[] Initial { get; }
    public int StepsPerEpoch { get; }
    /// <summary>The checkpoint this run continues from (--resume), or null.</summary>
    public CheckpointState? ResumeFrom { get; }
    private readonly string? _resumePath;
    private readonly IReadOnlyList<string> _skippedCheckpoints;

    /// <summary>Checks every input and loads data and initial parameters; writes nothing.</summary>
    /// <param name="refuseExistingCheckpoints">A fresh run (no --resume) refuses a checkpoint directory that already holds
    /// checkpoints of its configuration: --resume would later continue the wrong run. A standby coordinator shares them on purpose.</param>
    public static RunHost Prepare(TrainingConfig config, bool refuseExistingCheckpoints = true)
    {
        string runId = config.RunId ?? RunLogging.NewRunId(config);
        OutputPaths.CheckDirectory("--runs-dir", config.RunsDirectory);
        string runDirectory = RunLogging.CheckNewRunDirectory(config.RunsDirectory, runId);
        // Checked now, not after training: a path that fails at the end would lose the run's result.
        if (config.ExportParams is string export)
        {
            OutputPaths.CheckFile("--export-params", export);
            if (config.BnBatch is not null) OutputPaths.CheckFile("--export-params", RunningStatisticsPath(export));
        }
        if (config.TensorBoardDirectory is string tensorBoard) OutputPaths.CheckDirectory("--tensorboard", tensorBoard);
        if (config.CheckpointEvery > 0) OutputPaths.CheckDirectory("--checkpoint-dir", config.CheckpointDirectory);
        DeviceOption.Check(config.Device, config.Model);

        var data = DataSource.Load(config.Dataset, config.DataDirectory, config.ValidationSize, config.Seed);
        if (config.GlobalBatch > data.Train.Count)
            throw new UsageException($"--global-batch {config.GlobalBatch} is larger than the {data.Train.Count} training samples; use a smaller global batch");
        if (config.Adaptive is { } adaptive && adaptive.Min > data.Train.Count)
            throw new UsageException($"--batch-range {adaptive.Min}:{adaptive.Max} starts above the {data.Train.Count} training samples; use a smaller MIN");
        if (config.BatchSchedule?.FirstOrDefault(c => c.Batch > data.Train.Count) is { Batch: > 0 } tooLarge)
            throw new UsageException($"--batch-schedule asks for {tooLarge.Batch} samples per step at step {tooLarge.Step}, more than the {data.Train.Count} training samples; use a smaller batch");
        var sampler = new EpochSampler(data.Train.Count, config.GlobalBatch, config.Seed, config.Shuffle);
        TorchRuntime.Initialise(config.EffectiveThreads);
        int parameterCount = ModelFactory.LayoutOf(config.Model).TotalCount;
        float[] initial = config.InitParams is string init
            ? ParameterFile.Read(init, parameterCount)
            : ModelFactory.InitialParameters(config.Model, config.Seed);

        CheckpointState? resumeFrom = null;
        string? resumePath = null;
        IReadOnlyList<string> skipped = [];
        if (config.Resume)
        {
            resumeFrom = CheckpointStore.Of(config).LoadNewest(out string path, out skipped);
            resumePath = path;
            if (resumeFrom.Parameters.Length != parameterCount)
                throw new InvalidDataException($"--resume: {resumePath} holds {resumeFrom.Parameters.Length} parameters, the model has {parameterCount}");
        }
        if (config.CheckpointEvery > 0)
        {
            CheckWritable(config.CheckpointDirectory);
            var existing = CheckpointStore.Of(config).Files();
            if (refuseExistingCheckpoints && !config.Resume && existing.Count > 0)
                throw new UsageException($"--checkpoint-dir {config.CheckpointDirectory} already holds {existing.Count} checkpoint(s) of this configuration (newest {Path.GetFileName(existing[0])}); continue that run with --resume, or choose another --checkpoint-dir");
        }
        return new RunHost(config, runId, runDirectory, data, initial, sampler.StepsPerEpoch, resumeFrom, resumePath, skipped);
    }

    private static void CheckWritable(string directory)
    {
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--checkpoint-dir {directory} cannot be created ({e.Message}); choose a writable directory");
        }
    }

    public delegate Task<RunResult> Engine(RunEvents events, Action<StepRecord, TrainingSession> onStep);

    /// <summary>Opens the run's log, runs <paramref name="engine"/>, exports, and prints the summary line last on stdout.</summary>
    public async Task<int> RunAsync(string engineName, int workers, Engine engine)
    {
        var progress = ProgressDisplay.ForConsole();
        var result = await ExecuteAsync(engineName, workers, engine, progress.LogWriter, progress.Report);
        Console.Out.WriteLine(SummaryLine.Format(result.Summary));
        return 0;
    }

    /// <summary>
    /// Opens the run's log (console lines to <paramref name="console"/>, or the file only when null),
    /// runs <paramref name="engine"/> and exports the parameters. A failure is logged as RunFailed and rethrown.
    /// </summary>
    public async Task<RunResult> ExecuteAsync(string engineName, int workers, Engine engine, TextWriter? console, Action<StepRecord, TrainingSession> onStep)
    {
        var logFailures = new EventLogFailures(Path.Combine(RunDirectory, RunLogging.EventLogFileName));
        var logger = RunLogging.Create(RunDirectory, console, Config.TensorBoardDirectory is string tb ? Path.Combine(tb, RunId) : null, logFailures);
        Log.Logger = logger; // Akka's own log events reach Serilog through the static logger.
        var events = new RunEvents(logger, RunId, logFailures);
        PeakMemory.Reset(); // this run's peak, not the previous run's in the same process (sweep)
        events.RunStarted(Config, engineName, workers, Initial.Length, Data.Train.Count, StepsPerEpoch, Config.TotalSteps(StepsPerEpoch), Config.EffectiveThreads);
        if (ResumeFrom is not null)
            events.ResumedFromCheckpoint(ResumeFrom.NextStep, ResumeFrom.Epoch, ResumeFrom.IndexInEpoch, _resumePath!, _skippedCheckpoints);
        try
        {
            var result = await engine(events, onStep);
            if (Config.ExportParams is string exportPath)
            {
                ParameterFile.Write(exportPath, result.FinalParameters);
                // Under --bn-batch the model's state includes the coordinator's batch-norm running statistics (docs/batch-norm.md).
                if (result.FinalRunningStatistics is { } running) ParameterFile.Write(RunningStatisticsPath(exportPath), running);
            }
            return result;
        }
        catch (Exception e) when (e is not (RunEndedElsewhereException or RunInterruptedException))
        {
            // An interrupted run has already logged RunInterrupted; anything else ends the log with RunFailed.
            events.RunFailed(e);
            throw;
        }
        finally
        {
            Log.Logger = Serilog.Core.Logger.None;
            CloseLog(logger, logFailures);
        }
    }

    /// <summary>
    /// Closes the event log. Its file flushes on closing; on a full disk that throws, and an exception from here would
    /// replace the run's own (which already says the log failed): it is dropped only then.
    /// </summary>
    private static void CloseLog(Serilog.Core.Logger logger, EventLogFailures failures)
    {
        try
        {
            logger.Dispose();
        }
        catch (IOException) when (failures.Reason is not null)
        {
        }
    }

    /// <summary>Where --export-params FILE puts the batch-norm running statistics of a --bn-batch run: FILE.running-stats (same format).</summary>
    public static string RunningStatisticsPath(string exportPath) => exportPath + ".running-stats";
}
