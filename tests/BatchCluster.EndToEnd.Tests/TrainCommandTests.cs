using System.Security.Cryptography;
using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>The train command end to end on the synthetic set: summary line, event log, parameter files.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("train-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Runs => Path.Combine(_dir, "runs");

    private static readonly string[] SummaryFields =
        ["run_id", "steps", "epochs", "global_batch", "workers", "final_train_loss", "val_loss", "val_accuracy", "test_accuracy", "samples_per_s", "params_l2", "log_path",
         "train_accuracy", "generalization_gap"];

    private CliProcess.Outcome Train(params string[] flags) =>
        CliProcess.Run(["train", "--dataset", "synthetic", "--runs-dir", Runs, .. flags]);

    [Fact]
    public void A_cluster_run_ends_with_the_summary_line_and_writes_the_event_log()
    {
        string export = Path.Combine(_dir, "final.f32");
        var outcome = Train("--run-id", "tiny", "--steps", "12", "--global-batch", "32", "--workers", "2", "--eval-every", "5", "--export-params", export);
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);

        using var summary = JsonDocument.Parse(outcome.LastLine);
        var root = summary.RootElement;
        Assert.Equal(SummaryFields, root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("tiny", root.GetProperty("run_id").GetString());
        Assert.Equal(12, root.GetProperty("steps").GetInt64());
        Assert.Equal(32, root.GetProperty("global_batch").GetInt32());
        Assert.Equal(2, root.GetProperty("workers").GetInt32());
        Assert.InRange(root.GetProperty("val_accuracy").GetDouble(), 0.0, 1.0);
        Assert.True(root.GetProperty("samples_per_s").GetDouble() > 0);

        string logPath = root.GetProperty("log_path").GetString()!;
        Assert.Equal(Path.Combine(Runs, "tiny", "events.clef"), logPath);
        var events = File.ReadAllLines(logPath).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        var types = events.Select(e => e.GetProperty("EventType").GetString()).ToList();
        Assert.Equal("RunStarted", types[0]);
        Assert.Equal("RunCompleted", types[^1]);
        Assert.Equal(2, types.Count(t => t == "WorkerJoined"));
        var steps = events.Where(e => e.GetProperty("EventType").GetString() == "StepCompleted").ToList();
        Assert.Equal(Enumerable.Range(0, 12), steps.Select(s => s.GetProperty("Step").GetInt32()));
        Assert.All(steps, s => Assert.Equal(32, s.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
        var evals = events.Where(e => e.GetProperty("EventType").GetString() == "EvalCompleted")
            .Select(e => (e.GetProperty("Step").GetInt32(), e.GetProperty("Split").GetString()!)).ToList();
        // The fixed training subset is evaluated just before every validation (the generalization gap).
        Assert.Equal(new[] { (5, "train"), (5, "validation"), (10, "train"), (10, "validation"), (12, "train"), (12, "validation"), (12, "test") }, evals);

        // The exported parameters are the final ones: their L2 norm is the summary's.
        byte[] bytes = File.ReadAllBytes(export);
        Assert.Equal(203_530 * 4, bytes.Length);
        double l2 = Math.Sqrt(Enumerable.Range(0, bytes.Length / 4).Sum(i => Math.Pow(BitConverter.ToSingle(bytes, 4 * i), 2)));
        Assert.Equal(root.GetProperty("params_l2").GetDouble(), l2, 3);
    }

    [Fact]
    public void A_run_with_a_target_accuracy_stops_at_the_first_validation_that_reaches_it()
    {
        var outcome = Train("--run-id", "target", "--steps", "2000", "--global-batch", "64", "--workers", "2", "--eval-every", "10",
            "--target-accuracy", "0.5", "--train-eval-samples", "0");
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);
        var log = BatchCluster.Analysis.Logs.EventLogReader.Read(Path.Combine(Runs, "target", "events.clef"));
        long steps = JsonDocument.Parse(outcome.LastLine).RootElement.GetProperty("steps").GetInt64();
        Assert.InRange(steps, 10, 1990);
        var validations = log.Validations.Where(v => v.Step < steps).ToList();
        Assert.All(validations, v => Assert.True(v.Accuracy < 0.5, $"step {v.Step} already had {v.Accuracy}")); // it did not stop late
        Assert.True(log.Validations.First(v => v.Step == steps).Accuracy >= 0.5); // the one that reached it (the final validation repeats it)
        Assert.Contains(File.ReadAllLines(Path.Combine(Runs, "target", "events.clef")), l => l.Contains("\"EventType\":\"TargetReached\""));
    }

    [Fact]
    public void The_plain_engine_and_init_params_start_where_told()
    {
        string export = Path.Combine(_dir, "start.f32");
        var first = Train("--engine", "plain", "--steps", "3", "--global-batch", "16", "--export-params", export);
        Assert.True(first.ExitCode == 0, first.StdErr);
        Assert.Equal(1, JsonDocument.Parse(first.LastLine).RootElement.GetProperty("workers").GetInt32());

        // From the exported weights with a vanishing learning rate, the parameters stay put.
        var second = Train("--engine", "plain", "--steps", "1", "--global-batch", "16", "--lr", "1e-12", "--init-params", export);
        Assert.True(second.ExitCode == 0, second.StdErr);
        Assert.Equal(
            JsonDocument.Parse(first.LastLine).RootElement.GetProperty("params_l2").GetDouble(),
            JsonDocument.Parse(second.LastLine).RootElement.GetProperty("params_l2").GetDouble(), 6);
    }

    [Fact]
    public void Wrong_size_init_params_are_refused_before_anything_is_written()
    {
        string bad = Path.Combine(_dir, "bad.f32");
        File.WriteAllBytes(bad, new byte[40]);
        var outcome = Train("--init-params", bad, "--steps", "1");
        BadInputTests.AssertRefused(outcome, "holds 40 bytes but this model needs 203530 float32 values");
        Assert.False(Directory.Exists(Runs) && Directory.EnumerateFileSystemEntries(Runs).Any());
    }

    [Fact]
    public void A_run_id_is_never_reused_and_its_log_is_left_intact()
    {
        var first = Train("--run-id", "once", "--steps", "2", "--global-batch", "16", "--workers", "2");
        Assert.True(first.ExitCode == 0, first.StdErr);
        string log = Path.Combine(Runs, "once", "events.clef");
        byte[] before = SHA256.HashData(File.ReadAllBytes(log));

        var second = Train("--run-id", "once", "--steps", "2");
        BadInputTests.AssertRefused(second, "run id 'once' already has an event log");
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(log)));
    }
}
