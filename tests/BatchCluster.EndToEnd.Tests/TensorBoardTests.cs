using BatchCluster.Analysis.Logs;

namespace BatchCluster.EndToEnd.Tests;

public sealed class TensorBoardTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tensorboard-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// Reads a TensorBoard event file: records of [u64 length][u32 crc][event protobuf][u32 crc];
    /// returns (tag, step, value) of every scalar.
    /// </summary>
    private static List<(string Tag, long Step, float Value)> ReadScalars(string path, out string fileVersion)
    {
        var scalars = new List<(string, long, float)>();
        fileVersion = "";
        using var reader = new BinaryReader(File.OpenRead(path));
        while (reader.BaseStream.Position < reader.BaseStream.Length)
        {
            long length = reader.ReadInt64();
            reader.ReadUInt32();
            var e = Tensorboard.Event.Parser.ParseFrom(reader.ReadBytes((int)length));
            reader.ReadUInt32();
            if (!string.IsNullOrEmpty(e.FileVersion)) fileVersion = e.FileVersion;
            if (e.Summary is null) continue;
            foreach (var value in e.Summary.Value) scalars.Add((value.Tag, e.Step, value.SimpleValue));
        }
        return scalars;
    }

    [Fact]
    public void Tensorboard_gets_the_steps_and_evaluations_of_the_event_log()
    {
        string board = Path.Combine(_dir, "board"), runs = Path.Combine(_dir, "runs");
        var outcome = CliProcess.Run("train", "--dataset", "synthetic", "--runs-dir", runs, "--run-id", "tb", "--steps", "20", "--global-batch", "32",
            "--workers", "2", "--eval-every", "10", "--tensorboard", board);
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);

        string file = Assert.Single(Directory.GetFiles(Path.Combine(board, "tb"), "events.out.tfevents.*"));
        var scalars = ReadScalars(file, out string version);
        var log = EventLogReader.Read(Path.Combine(runs, "tb", "events.clef"));

        Assert.Equal("brain.Event:2", version);
        var losses = scalars.Where(s => s.Tag == "step/loss").ToList();
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), losses.Select(s => s.Step));
        Assert.Equal(log.Steps.Select(s => (float)s.Loss), losses.Select(s => s.Value));
        var accuracies = scalars.Where(s => s.Tag == "eval_validation/accuracy").ToList();
        Assert.Equal(log.Validations.Select(v => (v.Step, (float)v.Accuracy)), accuracies.Select(s => (s.Step, s.Value)));
        foreach (string tag in (string[])["time/transfer_ms", "noise_scale/b_simple", "memory/peak_mb", "eval_train/accuracy", "eval_validation/generalization_gap", "eval_test/accuracy"])
            Assert.Contains(scalars, s => s.Tag == tag);
    }
}
