using System.Diagnostics;
using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// A full disk is a decision (docs/robustness.md, "A full disk"): the first failed write of a checkpoint or of the event
/// log ends the run with RunFailed naming the path and the free space, one sentence and exit 1, the checkpoints already
/// written intact. The disk is a small tmpfs mounted for the test, filled by the run itself: in the local cluster (one
/// process) and on a coordinator node with a worker process, which is told the run ended and exits.
/// </summary>
public sealed class FullDiskTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private readonly string _dir = Directory.CreateTempSubdirectory("full-disk-e2e-").FullName;
    private readonly List<string> _mounts = [];

    public void Dispose()
    {
        foreach (string mount in _mounts) Run("umount", mount);
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A tmpfs of <paramref name="size"/> (mount's syntax, e.g. 3m) at a new directory under the test's own.</summary>
    private string SmallDisk(string name, string size)
    {
        string path = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        Assert.Equal(0, Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", path));
        _mounts.Add(path);
        return path;
    }

    private static int Run(string program, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardError = true })!;
        process.WaitForExit();
        return process.ExitCode;
    }

    private static string[] Train(string runsDir, string checkpointDir, int steps, int checkpointEvery) =>
    [
        "--model", "mlp", "--global-batch", "128", "--optimizer", "momentum", "--lr", "0.05", "--steps", steps.ToString(),
        "--eval-every", "0", "--train-eval-samples", "0", "--runs-dir", runsDir, "--run-id", "full",
        "--checkpoint-every", checkpointEvery.ToString(), "--checkpoint-dir", checkpointDir,
    ];

    /// <summary>One sentence on stderr, naming the path and the free space; no stack trace.</summary>
    private static void AssertOneClearSentence(string stderr, string what, string path)
    {
        Assert.Contains($"writing {what} {path}", stderr);
        Assert.Contains("MB free on the file system of", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    private static string[] EventTypes(string log) =>
        File.ReadAllLines(log).Select(l => JsonDocument.Parse(l).RootElement)
            .Select(e => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "").ToArray();

    [TmpfsFact]
    public void A_checkpoint_on_a_full_disk_ends_the_run_with_its_path_and_the_free_space_and_keeps_the_older_one()
    {
        // The MLP with momentum checkpoints 1.6 MB: on 3 MB the one before step 5 fits, the one before step 10 does not.
        string checkpoints = SmallDisk("checkpoints", "3m");
        var outcome = CliProcess.Run(Timeout, ["train", "--workers", "2", .. Train(Path.Combine(_dir, "runs"), checkpoints, 30, 5)]);
        Assert.Equal(1, outcome.ExitCode);
        AssertOneClearSentence(outcome.StdErr, "the checkpoint", Path.Combine(checkpoints, "checkpoint-"));
        string kept = Assert.Single(Directory.GetFiles(checkpoints));
        Assert.EndsWith("-0000000005.bcck", kept);
        var types = EventTypes(Path.Combine(_dir, "runs", "full", "events.clef"));
        Assert.Equal("RunFailed", types[^1]);
        Assert.Equal(10, types.Count(t => t == "StepCompleted")); // steps 0–9: the one that wanted the checkpoint was the last
    }

    [TmpfsFact]
    public void An_event_log_on_a_full_disk_ends_the_run_at_the_next_step()
    {
        string runs = SmallDisk("runs", "64k");
        string checkpoints = Path.Combine(_dir, "checkpoints");
        var outcome = CliProcess.Run(Timeout, ["train", "--workers", "2", .. Train(runs, checkpoints, 2000, 10)]);
        Assert.Equal(1, outcome.ExitCode);
        AssertOneClearSentence(outcome.StdErr, "the event log", Path.Combine(runs, "full", "events.clef"));
        Assert.Contains("the newest intact checkpoint is", outcome.StdErr); // the run stopped long before 2,000 steps
        Assert.NotEmpty(Directory.GetFiles(checkpoints));
    }

    [TmpfsFact]
    public async Task A_coordinator_node_whose_checkpoint_disk_is_full_fails_the_run_and_its_worker_process_is_told()
    {
        string checkpoints = SmallDisk("node-checkpoints", "3m");
        int port = NodeProcess.FreePort();
        using var coordinator = new NodeProcess(["node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "1",
            "--min-workers", "1", .. Train(Path.Combine(_dir, "node-runs"), checkpoints, 30, 5)]);
        using var worker = new NodeProcess(["node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--join-timeout", "60"]);
        Assert.Equal(1, await coordinator.WaitForExitAsync(Timeout));
        AssertOneClearSentence(string.Join('\n', coordinator.StdErr), "the checkpoint", Path.Combine(checkpoints, "checkpoint-"));
        Assert.EndsWith("-0000000005.bcck", Assert.Single(Directory.GetFiles(checkpoints)));
        Assert.NotEqual(0, await worker.WaitForExitAsync(Timeout)); // told the run failed: it exits, and says so
    }
}

/// <summary>
/// A test that mounts a small tmpfs (root only): skipped elsewhere, unless BATCHCLUSTER_REQUIRE_HOSTS=1 (CI, which runs
/// as root for the simulated-hosts tests too), where it runs and fails loudly instead.
/// </summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (!(RootOnly.IsRoot && (File.Exists("/usr/bin/mount") || File.Exists("/bin/mount"))) && !RootOnly.Required)
            Skip = "mounting a small tmpfs needs root; run the tests as root to include this one";
    }
}
