using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests.Analysis;

public sealed class SweepCommandTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("sweep-e2e-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    private CliProcess.Outcome Sweep() => CliProcess.Run("sweep", "--global-batch", "32,64", "--workers", "2", "--steps", "12", "--eval-every", "6",
        "--train-eval-samples", "500", "--threads", "1", "--runs-dir", _runs);

    private static JsonElement LastJson(CliProcess.Outcome outcome) => JsonDocument.Parse(outcome.LastLine).RootElement;

    [Fact]
    public void A_sweep_run_again_skips_completed_runs_and_retrains_an_unfinished_one()
    {
        var first = Sweep();
        Assert.True(first.ExitCode == 0, first.StdErr);
        Assert.Equal((2, 2, 0), (LastJson(first).GetProperty("runs").GetInt32(), LastJson(first).GetProperty("trained").GetInt32(), LastJson(first).GetProperty("skipped").GetInt32()));
        var logs = Directory.GetFiles(_runs, "events.clef", SearchOption.AllDirectories).Order().ToArray();
        Assert.Equal(2, logs.Length);

        // The first run is kept as it is; the second "crashed": its log lost the RunCompleted line.
        byte[] keptBefore = File.ReadAllBytes(logs[0]);
        var lines = File.ReadAllLines(logs[1]);
        File.WriteAllLines(logs[1], lines[..^1]);
        string crashedRun = Path.GetFileName(Path.GetDirectoryName(logs[1]))!;

        var second = Sweep();
        Assert.True(second.ExitCode == 0, second.StdErr);
        Assert.Equal((1, 1), (LastJson(second).GetProperty("trained").GetInt32(), LastJson(second).GetProperty("skipped").GetInt32()));
        Assert.Contains(second.StdOutLines, l => l.Contains(Path.GetFileName(Path.GetDirectoryName(logs[0]))!) && l.EndsWith("already completed, skipped"));
        Assert.Equal(keptBefore, File.ReadAllBytes(logs[0]));
        Assert.Contains("RunCompleted", File.ReadAllLines(logs[1])[^1]);
        // The unfinished attempt is kept aside, not lost, and not counted in the report.
        var superseded = Directory.GetDirectories(Path.Combine(_runs, ".superseded"));
        Assert.Single(superseded);
        Assert.StartsWith(crashedRun, Path.GetFileName(superseded[0]));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(_runs, "report", "summary.csv")).Length); // header + 2 runs

        var third = Sweep();
        Assert.True(third.ExitCode == 0, third.StdErr);
        Assert.Equal((0, 2), (LastJson(third).GetProperty("trained").GetInt32(), LastJson(third).GetProperty("skipped").GetInt32()));
    }

    [Fact]
    public void Flags_that_would_break_resuming_are_refused()
    {
        BadInputTests.AssertRefused(CliProcess.Run("sweep", "--run-id", "x", "--runs-dir", _runs), "--run-id does not apply to a sweep");
        BadInputTests.AssertRefused(CliProcess.Run("sweep", "--lr-scaling", "none,cubic", "--runs-dir", _runs), "--lr-scaling must be a comma-separated list");
        BadInputTests.AssertRefused(CliProcess.Run("sweep", "--reduce", "ring", "--dataset", "synthetic", "--runs-dir", _runs),
            "--reduce ring reduces around worker processes; a sweep runs the local simulated cluster in one process (scripts/sweep-hosts.sh sweeps worker nodes on simulated hosts)");
        BadInputTests.AssertRefused(CliProcess.Run("sweep", "--lr-scaling", "linear", "--max-lr", "0.4", "--dataset", "synthetic", "--runs-dir", _runs),
            "--max-lr caps AdaScale's gain: add adascale to --lr-scaling (the sweep's other rules take their rates from --lr)");
        Assert.Empty(Directory.GetFileSystemEntries(_runs));
    }
}
