using BatchCluster.Core.Checkpoints;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Core.Tests.Checkpoints;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("checkpoint-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static CheckpointState State(long step, string fingerprint = "abc") =>
        new(fingerprint, step, (int)(step / 10), (int)(step % 10), [1f, 2f, step],
            new OptimizerState("adam", step, [[0.5f, 0.25f, 0f], [1f, 1f, 1f]]));

    [Fact]
    public void Round_trips_every_field()
    {
        var store = new CheckpointStore(_dir, "abc");
        string path = store.Write(State(12));
        var back = CheckpointStore.Read(path);
        Assert.Equal(("abc", 12L, 1, 2), (back.ConfigFingerprint, back.NextStep, back.Epoch, back.IndexInEpoch));
        Assert.Equal(new[] { 1f, 2f, 12f }, back.Parameters);
        Assert.Equal(("adam", 12L), (back.Optimizer.Name, back.Optimizer.StepCount));
        Assert.Equal(new[] { 0.5f, 0.25f, 0f }, back.Optimizer.Buffers[0]);
        Assert.Equal(new[] { 1f, 1f, 1f }, back.Optimizer.Buffers[1]);
        Assert.Single(Directory.GetFiles(_dir)); // no temporary file left
        Assert.Null(back.Sizing);

        var sizing = new Core.BatchSizing.BatchSizingState(96, 384, 12.5, new Core.Gradients.NoiseScaleState(0.25, 30, 0.9), 40);
        var adaptive = CheckpointStore.Read(store.Write(State(13) with { Sizing = sizing }));
        Assert.Equal(sizing, adaptive.Sizing);
        Assert.Null(adaptive.RunningStatistics);

        var window = new Core.Gradients.PersistentGradientState([0.5f, -1.5f, 3f], 3, 0.125, 7.5, 0.0625, 0.75, 41);
        var windowed = CheckpointStore.Read(store.Write(State(15) with { Sizing = sizing with { Persistent = window } })).Sizing!.Persistent!;
        Assert.Equal(window.WindowSum, windowed.WindowSum);
        Assert.Equal(window with { WindowSum = windowed.WindowSum }, windowed);

        var ghost = CheckpointStore.Read(store.Write(State(14) with { RunningStatistics = [0.5f, -0.25f, 1.5f, 2f] }));
        Assert.Equal(new[] { 0.5f, -0.25f, 1.5f, 2f }, ghost.RunningStatistics);
    }

    [Fact]
    public void A_damaged_newest_checkpoint_is_skipped_for_the_previous_good_one()
    {
        var store = new CheckpointStore(_dir, "abc");
        string older = store.Write(State(10));
        string newest = store.Write(State(20));
        var bytes = File.ReadAllBytes(newest);
        File.WriteAllBytes(newest, bytes[..(bytes.Length / 2)]); // as if cut off mid-write
        var state = store.LoadNewest(out string path, out var skipped);
        Assert.Equal(10, state.NextStep);
        Assert.Equal(older, path);
        Assert.Equal(older, store.NewestIntact());
        Assert.Single(skipped);
        Assert.Contains(newest, skipped[0]);
    }

    [Fact]
    public void A_checkpoint_of_another_configuration_is_refused_clearly()
    {
        new CheckpointStore(_dir, "def").Write(State(10, fingerprint: "def"));
        var e = Assert.Throws<InvalidDataException>(() => new CheckpointStore(_dir, "abc").LoadNewest(out _, out _));
        Assert.Contains("1 checkpoint(s) of another configuration but none of this run's (fingerprint abc)", e.Message);
        Assert.Null(new CheckpointStore(_dir, "abc").NewestIntact());
    }

    /// <summary>
    /// Runs of different configurations sharing a directory: pruning keeps the newest three of each
    /// and never deletes another configuration's files (it used to prune across configurations and
    /// could delete the checkpoint another run had just written).
    /// </summary>
    [Fact]
    public void Pruning_touches_only_the_files_of_its_own_configuration()
    {
        var mine = new CheckpointStore(_dir, "abc");
        var theirs = new CheckpointStore(_dir, "def");
        string theirsJustWritten = theirs.Write(State(7, fingerprint: "def"));
        foreach (long step in new long[] { 100, 200, 300, 400 }) mine.Write(State(step));
        Assert.True(File.Exists(theirsJustWritten));
        Assert.Equal(new[] { 400L, 300L, 200L }, mine.Files().Select(f => CheckpointStore.Read(f).NextStep));
        Assert.Equal(7, theirs.LoadNewest(out _, out _).NextStep);
        Assert.Throws<ArgumentException>(() => mine.Write(State(500, fingerprint: "def")));
        // A file just written is never pruned, nor newer files of the same configuration (left by an earlier run).
        string justWritten = mine.Write(State(10));
        Assert.True(File.Exists(justWritten));
        Assert.Equal(new[] { 400L, 300L, 200L, 10L }, mine.Files().Select(f => CheckpointStore.Read(f).NextStep));
    }

    [Fact]
    public void An_empty_directory_says_so()
    {
        var e = Assert.Throws<InvalidDataException>(() => new CheckpointStore(Path.Combine(_dir, "none"), "abc").LoadNewest(out _, out _));
        Assert.Contains("no checkpoint in", e.Message);
    }

    [Fact]
    public void Only_the_newest_three_are_kept()
    {
        var store = new CheckpointStore(_dir, "abc");
        foreach (long step in new long[] { 5, 10, 15, 20, 25 }) store.Write(State(step));
        Assert.Equal(new[] { 25L, 20L, 15L }, store.Files().Select(f => CheckpointStore.Read(f).NextStep));
    }

    [Fact]
    public void The_fingerprint_changes_with_the_maths_not_with_the_layout()
    {
        var config = new TrainingConfig();
        Assert.Equal(ConfigFingerprint.Of(config), ConfigFingerprint.Of(config with { Workers = 7, Threads = 3, RunId = "x", Steps = 99 }));
        Assert.NotEqual(ConfigFingerprint.Of(config), ConfigFingerprint.Of(config with { LearningRate = 0.2 }));
        Assert.NotEqual(ConfigFingerprint.Of(config), ConfigFingerprint.Of(config with { GlobalBatch = 64 }));
        Assert.NotEqual(ConfigFingerprint.Of(config), ConfigFingerprint.Of(config with { Seed = 2 }));
        var bn = config with { Model = ModelSpec.Cnn(batchNorm: true) };
        Assert.NotEqual(ConfigFingerprint.Of(bn), ConfigFingerprint.Of(bn with { BnBatch = 16 }));
        Assert.NotEqual(ConfigFingerprint.Of(bn with { BnBatch = 32 }), ConfigFingerprint.Of(bn with { BnBatch = 16 }));
        // A rate ceiling changes AdaScale's steps, and nothing where there is no gain to cap.
        var adascale = config with { LrScaling = Core.Schedules.LrScaling.AdaScale };
        Assert.NotEqual(ConfigFingerprint.Of(adascale), ConfigFingerprint.Of(adascale with { MaxLearningRate = 0.3 }));
        Assert.Equal(ConfigFingerprint.Of(config), ConfigFingerprint.Of(config with { MaxLearningRate = 0.3 }));
    }

    /// <summary>
    /// A --bn-batch run (docs/batch-norm.md) resumed from a checkpoint ends bitwise where the uninterrupted run ends, running
    /// statistics included: the checkpoint keeps them (they are not derivable from the parameters).
    /// </summary>
    [Fact]
    public void A_ghost_batch_norm_run_resumes_exactly_with_its_running_statistics()
    {
        var data = SyntheticImages.Create(seed: 5, trainCount: 320, validationCount: 32, testCount: 32);
        var config = new TrainingConfig
        {
            Dataset = "synthetic", Model = ModelSpec.Cnn(batchNorm: true), GlobalBatch = 32, BnBatch = 8, Steps = 12, EvalEvery = 0,
            TrainEvalSamples = 0, Engine = Engine.Plain, Optimizer = new OptimizerSettings(OptimizerKind.Momentum), LearningRate = 0.01,
            CheckpointEvery = 4, CheckpointDirectory = _dir,
        };
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        var events = new RunEvents(Logger.None, "r");
        var uninterrupted = PlainTrainer.Run(config with { CheckpointEvery = 0 }, data, initial, events, "");

        PlainTrainer.Run(config with { Steps = 10 }, data, initial, events, "");
        var checkpoint = new CheckpointStore(_dir, ConfigFingerprint.Of(config)).LoadNewest(out _, out _);
        Assert.Equal(8, checkpoint.NextStep);
        Assert.Equal(RunningStatistics.Length(config.Model), checkpoint.RunningStatistics?.Length);
        var resumed = PlainTrainer.Run(config, data, initial, events, "", resumeFrom: checkpoint);

        Assert.Equal(uninterrupted.FinalParameters, resumed.FinalParameters);
        Assert.Equal(uninterrupted.FinalRunningStatistics, resumed.FinalRunningStatistics);
        Assert.NotEqual(RunningStatistics.Initial(config.Model), resumed.FinalRunningStatistics);
    }

    /// <summary>
    /// Promise 5 (docs/architecture.md): a run stopped after a checkpoint and resumed from it ends bitwise where an
    /// uninterrupted run ends (parameters, momentum and Adam state, sampler position all restored).
    /// </summary>
    [Theory]
    [InlineData(OptimizerKind.Momentum)]
    [InlineData(OptimizerKind.Adam)]
    public void Resuming_from_a_checkpoint_continues_the_run_exactly(OptimizerKind optimizer)
    {
        var data = SyntheticImages.Create(seed: 5, trainCount: 640, validationCount: 64, testCount: 64);
        var config = new TrainingConfig
        {
            Dataset = "synthetic", Model = ModelSpec.Mlp(32), GlobalBatch = 64, Steps = 25, EvalEvery = 0, Engine = Engine.Plain,
            Optimizer = new OptimizerSettings(optimizer), LearningRate = optimizer == OptimizerKind.Adam ? 0.01 : 0.05,
            CheckpointEvery = 8, CheckpointDirectory = _dir,
        };
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        var events = new RunEvents(Logger.None, "r");
        var uninterrupted = PlainTrainer.Run(config with { CheckpointEvery = 0 }, data, initial, events, "");

        PlainTrainer.Run(config with { Steps = 17 }, data, initial, events, ""); // "dies" after step 17; last checkpoint: before step 16
        var checkpoint = new CheckpointStore(_dir, ConfigFingerprint.Of(config)).LoadNewest(out _, out _);
        Assert.Equal(16, checkpoint.NextStep);
        var resumed = PlainTrainer.Run(config, data, initial, events, "", resumeFrom: checkpoint);

        Assert.Equal(25, resumed.Summary.Steps);
        Assert.Equal(uninterrupted.FinalParameters, resumed.FinalParameters);
    }

    /// <summary>
    /// A run whose batch changes (a schedule crossing an epoch boundary at a size that does not divide it) with AdaScale: resumed
    /// from a checkpoint it ends bitwise where the uninterrupted run ends — the checkpoint keeps the batch, the sample offset, τ
    /// and the smoothed noise estimates the learning rate is made of, the noise window's open sum and draw included (MLP(64): its
    /// first layer's 24 whole blocks are sampled, 3 a window).
    /// </summary>
    [Fact]
    public void A_run_whose_batch_changes_resumes_exactly_with_its_batch_tau_and_noise_estimates()
    {
        var data = SyntheticImages.Create(seed: 5, trainCount: 640, validationCount: 64, testCount: 64);
        var config = new TrainingConfig
        {
            Dataset = "synthetic", Model = ModelSpec.Mlp(64), GlobalBatch = 64, Steps = 30, EvalEvery = 0, Engine = Engine.Plain,
            Optimizer = new OptimizerSettings(OptimizerKind.Momentum), LearningRate = 0.05, BaseBatch = 64,
            LrScaling = Core.Schedules.LrScaling.AdaScale, BatchSchedule = [new(7, 96), new(19, 48)],
            CheckpointEvery = 9, CheckpointDirectory = _dir,
        };
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        var events = new RunEvents(Logger.None, "r");
        var uninterrupted = PlainTrainer.Run(config with { CheckpointEvery = 0 }, data, initial, events, "");

        PlainTrainer.Run(config with { Steps = 21 }, data, initial, events, "");
        var checkpoint = new CheckpointStore(_dir, ConfigFingerprint.Of(config)).LoadNewest(out _, out _);
        Assert.Equal(18, checkpoint.NextStep);
        var sizing = Assert.IsType<Core.BatchSizing.BatchSizingState>(checkpoint.Sizing);
        Assert.Equal(96, sizing.Batch);
        Assert.True(sizing.Tau > 0 && sizing.Noise.Weight > 0);
        var window = Assert.IsType<Core.Gradients.PersistentGradientState>(sizing.Persistent);
        Assert.True(window.Window >= 1 && window.Steps > 0, $"window {window.Window}, {window.Steps} steps open"); // one closed, one open
        Assert.Contains(Enumerable.Range(0, 24), b => window.WindowSum.Skip(b * 2048).Take(2048).All(v => v == 0)); // a block not read
        var resumed = PlainTrainer.Run(config, data, initial, events, "", resumeFrom: checkpoint);

        Assert.Equal(30, resumed.Summary.Steps);
        Assert.Equal(uninterrupted.FinalParameters, resumed.FinalParameters);
    }

    /// <summary>
    /// A resumed run is joined to the run it continues by the CheckpointWritten of the checkpoint it started from, so no
    /// checkpoint may appear on disk before its event is logged (a run killed in between used to leave one the log did
    /// not name: CheckpointResumeTests failed on it once). The sink sees each event as it is written.
    /// </summary>
    [Fact]
    public void A_checkpoint_is_logged_before_it_takes_its_name()
    {
        var data = SyntheticImages.Create(seed: 5, trainCount: 320, validationCount: 32, testCount: 32);
        var config = new TrainingConfig
        {
            Dataset = "synthetic", Model = ModelSpec.Mlp(32), GlobalBatch = 32, Steps = 12, EvalEvery = 0, TrainEvalSamples = 0,
            Engine = Engine.Plain, Optimizer = new OptimizerSettings(OptimizerKind.Momentum), LearningRate = 0.05,
            CheckpointEvery = 4, CheckpointDirectory = _dir,
        };
        var seen = new List<(string Path, bool Existed, long Bytes)>();
        var sink = new CheckpointEventSink(seen);
        var logger = new Serilog.LoggerConfiguration().WriteTo.Sink(sink).CreateLogger();
        PlainTrainer.Run(config, data, ModelFactory.InitialParameters(config.Model, config.Seed), new RunEvents(logger, "r"), "");

        Assert.Equal(3, seen.Count);
        Assert.All(seen, e => Assert.False(e.Existed, $"{e.Path} was on disk before its CheckpointWritten"));
        Assert.All(seen, e => Assert.Equal(new FileInfo(e.Path).Length, e.Bytes));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    private sealed class CheckpointEventSink(List<(string, bool, long)> seen) : Serilog.Core.ILogEventSink
    {
        public void Emit(Serilog.Events.LogEvent e)
        {
            if (e.Properties.TryGetValue(RunEvents.EventTypeProperty, out var type) && type.ToString() == "\"CheckpointWritten\"")
            {
                string path = (string)((Serilog.Events.ScalarValue)e.Properties["CheckpointPath"]).Value!;
                long bytes = Convert.ToInt64(((Serilog.Events.ScalarValue)e.Properties["Bytes"]).Value);
                seen.Add((path, File.Exists(path), bytes));
            }
        }
    }

    /// <summary>The audit found NaN checkpoints written and resumed at lr 1e300: neither may happen.</summary>
    [Fact]
    public void Non_finite_parameters_are_never_written_nor_resumed()
    {
        var store = new CheckpointStore(_dir, "abc");
        var poisoned = State(30) with { Parameters = [1f, float.NaN, 3f] };
        Assert.Throws<InvalidDataException>(() => store.Write(poisoned));
        Assert.Empty(Directory.GetFiles(_dir));

        // A file that is intact as bytes (its hash matches) but holds an infinity is skipped like a damaged one.
        string good = store.Write(State(10));
        string bad = store.Write(State(20));
        var bytes = File.ReadAllBytes(bad);
        var body = bytes.AsSpan(0, bytes.Length - 32);
        int at = body.IndexOf(BitConverter.GetBytes(2f));
        BitConverter.GetBytes(float.PositiveInfinity).CopyTo(body[at..]);
        System.Security.Cryptography.SHA256.HashData(body).CopyTo(bytes.AsSpan(bytes.Length - 32));
        File.WriteAllBytes(bad, bytes);
        var state = store.LoadNewest(out string path, out var skipped);
        Assert.Equal(good, path);
        Assert.Equal(10, state.NextStep);
        Assert.Contains("non-finite", Assert.Single(skipped));
    }

    /// <summary>A writer killed mid-write (SIGKILL) leaves its temporary file; the next write removes it, never a live writer's.</summary>
    [Fact]
    public void Temporary_files_of_dead_writers_are_removed()
    {
        var store = new CheckpointStore(_dir, "abc");
        string dead = Path.Combine(_dir, "checkpoint-abc-0000000005.bcck.999999999.tmp"); // no such process id on Linux (pid_max ≤ 4194304)
        string live = Path.Combine(_dir, $"checkpoint-abc-0000000006.bcck.{Environment.ProcessId}.tmp");
        string other = Path.Combine(_dir, "checkpoint-def-0000000005.bcck.999999999.tmp");
        foreach (var f in new[] { dead, live, other }) File.WriteAllBytes(f, []);
        store.Write(State(7));
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(other)); // another configuration's: its own store cleans it
    }
}
