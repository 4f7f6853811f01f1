using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// Promise 8 across processes: SIGTERM and SIGINT end every kind of process cleanly and quickly
/// (a checkpoint when checkpoints are on, a terminal event, a log never cut mid-line), and nodes
/// that come back, reachable again or restarted, are used again.
/// </summary>
public sealed class ShutdownTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    /// <summary>docker stop and systemd wait 10 s before SIGKILL.</summary>
    private const double StopSeconds = 10;
    private readonly string _dir = Directory.CreateTempSubdirectory("shutdown-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Runs => Path.Combine(_dir, "runs");
    private string Checkpoints => Path.Combine(_dir, "checkpoints");

    private static List<JsonElement> ReadLog(string path) =>
        File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList(); // every line whole: it throws on a cut one

    private static string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";

    /// <summary>The run's own events (Akka's lines carry no EventType).</summary>
    private static List<JsonElement> RunEvents(List<JsonElement> log) => log.Where(e => Type(e) != "").ToList();

    [Theory]
    [InlineData("actors", NodeProcess.SigTerm, 143)]
    [InlineData("plain", 2 /* SIGINT */, 130)]
    public async Task A_stopped_train_checkpoints_ends_its_log_with_RunInterrupted_and_resumes(string engine, int signal, int expectedExit)
    {
        string[] Flags(string runId, params string[] more) =>
        [
            "train", "--engine", engine, "--dataset", "synthetic", "--workers", "2", "--eval-every", "100", "--train-eval-samples", "0",
            "--checkpoint-every", "100000", "--checkpoint-dir", Checkpoints, "--runs-dir", Runs, "--run-id", runId, .. more,
        ];
        long lastCommitted;
        using (var train = new NodeProcess(Flags("stopped", "--steps", "10000000")))
        {
            await train.WaitForLineAsync(l => l.Contains("Evaluation after step 100 ") && l.Contains("on validation"), Timeout);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            train.Signal(signal);
            int exit = await train.WaitForExitAsync(Timeout);
            Assert.True(clock.Elapsed.TotalSeconds < StopSeconds, $"exited {clock.Elapsed.TotalSeconds:F1} s after the signal");
            Assert.Equal(expectedExit, exit);
            Assert.Contains(train.StdErr, l => l.Contains("interrupted after step") && l.Contains("continue with --resume"));

            var events = RunEvents(ReadLog(Path.Combine(Runs, "stopped", "events.clef")));
            var last = events[^1];
            Assert.Equal("RunInterrupted", Type(last));
            lastCommitted = last.GetProperty("LastCommittedStep").GetInt64();
            Assert.True(lastCommitted >= 99, $"interrupted after step {lastCommitted}");
            var steps = events.Where(e => Type(e) == "StepCompleted").Select(e => e.GetProperty("Step").GetInt64()).ToList();
            Assert.Equal(Enumerable.Range(0, (int)lastCommitted + 1).Select(i => (long)i), steps);
            string checkpoint = last.GetProperty("Checkpoint").GetString()!;
            Assert.True(File.Exists(checkpoint), checkpoint);
            Assert.EndsWith($"-{lastCommitted + 1:D10}.bcck", checkpoint);
        }

        // Nothing was lost: the run continues from that checkpoint.
        var resumed = CliProcess.Run(Flags("resumed", "--steps", (lastCommitted + 6).ToString(), "--resume"));
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        var resumedEvents = RunEvents(ReadLog(Path.Combine(Runs, "resumed", "events.clef")));
        Assert.Equal(lastCommitted + 1, resumedEvents.Single(e => Type(e) == "ResumedFromCheckpoint").GetProperty("Step").GetInt64());
        Assert.Equal(5, resumedEvents.Count(e => Type(e) == "StepCompleted"));
        Assert.Equal("RunCompleted", Type(resumedEvents[^1]));
    }

    /// <summary>
    /// A checkpoint that cannot be written (as on a full disk: here its final name is taken by a
    /// directory) is an exception inside the coordinator. It used to restart the coordinator and
    /// hang the run; now the run stops with RunFailed naming the last committed step and the newest
    /// intact checkpoint, one paragraph on stderr, exit 1, and the earlier checkpoint untouched.
    /// </summary>
    [Theory]
    [InlineData("actors")]
    [InlineData("plain")]
    public void A_checkpoint_that_cannot_be_written_fails_the_run_and_names_the_last_good_one(string engine)
    {
        string[] flags =
        [
            "--engine", engine, "--dataset", "synthetic", "--steps", "100000", "--checkpoint-every", "40", "--checkpoint-dir", Checkpoints,
            "--eval-every", "0", "--train-eval-samples", "0", "--runs-dir", Runs, "--run-id", "disk",
        ];
        string fingerprint = Core.Checkpoints.ConfigFingerprint.Of(Cli.Options.TrainOptions.Parse(flags));
        string good = Path.Combine(Checkpoints, $"checkpoint-{fingerprint}-{40:D10}.bcck");
        Directory.CreateDirectory(Path.Combine(Checkpoints, $"checkpoint-{fingerprint}-{80:D10}.bcck"));

        var outcome = CliProcess.Run(["train", .. flags]);

        Assert.Equal(1, outcome.ExitCode);
        string error = outcome.StdErr.Trim();
        Assert.StartsWith("batchcluster: the run failed:", error);
        Assert.Contains($"the last committed step is 79, the newest intact checkpoint is {good}", error);
        Assert.DoesNotContain("   at ", error); // no stack trace for a person; it is in the log
        var events = RunEvents(ReadLog(Path.Combine(Runs, "disk", "events.clef")));
        var last = events[^1];
        Assert.Equal("RunFailed", Type(last));
        Assert.Equal(79, last.GetProperty("LastCommittedStep").GetInt64());
        Assert.Equal(good, last.GetProperty("Checkpoint").GetString());
        Assert.Equal(40, Core.Checkpoints.CheckpointStore.Read(good).NextStep);
    }

    /// <summary>
    /// A coordinator and two worker nodes, on a run that only ends when it is stopped:
    /// (1) a worker frozen (SIGSTOP) until the coordinator finds it unreachable, then thawed, is
    /// taken back and used; (2) that worker killed and restarted on the same address is used too;
    /// (3) the other worker stopped with SIGTERM says so (its share moves at once, not after the
    /// failure detector) and exits 0 within 10 s; (4) the coordinator stopped with SIGTERM writes a
    /// checkpoint, ends its log with RunInterrupted and exits 143 within 10 s; (5) the last worker,
    /// left waiting for a coordinator, stops cleanly as well.
    /// </summary>
    [Fact]
    public async Task Nodes_come_back_and_every_node_stops_cleanly_on_sigterm()
    {
        int port = NodeProcess.FreePort(), workerPort = NodeProcess.FreePort();
        string worker = $"127.0.0.1:{workerPort}/user/worker";
        string[] Worker(params string[] more) => ["node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--join-timeout", "60", .. more];
        using var coordinator = new NodeProcess("node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "2", "--min-workers", "1",
            "--dataset", "synthetic", "--steps", "100000000", "--eval-every", "300", "--train-eval-samples", "0", "--step-deadline", "30",
            "--checkpoint-every", "1000000", "--checkpoint-dir", Checkpoints, "--runs-dir", Runs, "--run-id", "nodes");
        using var steady = new NodeProcess(Worker());
        var comesBack = new NodeProcess(Worker("--port", workerPort.ToString()));
        NodeProcess? restarted = null;
        try
        {
            bool Validation(string l) => l.Contains("Evaluation after step") && l.Contains("on validation");
            async Task TrainsOnAsync()
            {
                int seen = coordinator.Lines(Validation).Count();
                await coordinator.WaitForLinesAsync(Validation, seen + 1, Timeout);
            }
            await coordinator.WaitForLineAsync(l => l.Contains("2 workers ready"), Timeout);
            await TrainsOnAsync();

            // (1) Frozen until unreachable, then thawed before the split-brain resolver downs it.
            comesBack.Signal(NodeProcess.SigStop);
            await coordinator.WaitForLineAsync(l => l.Contains($"{worker} left (unreachable)"), Timeout);
            comesBack.Signal(NodeProcess.SigCont);
            await coordinator.WaitForLinesAsync(l => l.Contains($"{worker} joined"), 2, Timeout);
            await TrainsOnAsync();

            // (2) Killed, and restarted on the same address.
            comesBack.Kill();
            await coordinator.WaitForLinesAsync(l => l.Contains($"{worker} left"), 2, Timeout);
            restarted = new NodeProcess(Worker("--port", workerPort.ToString()));
            await coordinator.WaitForLinesAsync(l => l.Contains($"{worker} joined"), 3, Timeout);
            await TrainsOnAsync();

            // (3) A worker stopped with SIGTERM.
            var (workerSeconds, workerExit) = await steady.StopAsync(Timeout);
            Assert.True(workerSeconds < StopSeconds, $"the worker exited {workerSeconds:F1} s after SIGTERM");
            Assert.Equal(0, workerExit);
            await coordinator.WaitForLineAsync(l => l.Contains("left (leaving (shut down))"), Timeout);
            await TrainsOnAsync();

            // (4) The coordinator stopped with SIGTERM.
            var (coordinatorSeconds, coordinatorExit) = await coordinator.StopAsync(Timeout);
            Assert.True(coordinatorSeconds < StopSeconds, $"the coordinator exited {coordinatorSeconds:F1} s after SIGTERM");
            Assert.Equal(143, coordinatorExit);

            // (5) The last worker.
            var (lastSeconds, lastExit) = await restarted.StopAsync(Timeout);
            Assert.True(lastSeconds < StopSeconds, $"the last worker exited {lastSeconds:F1} s after SIGTERM");
            Assert.Equal(0, lastExit);
        }
        finally
        {
            comesBack.Dispose();
            restarted?.Dispose();
        }

        var events = RunEvents(ReadLog(Path.Combine(Runs, "nodes", "events.clef")));
        var last = events[^1];
        Assert.Equal("RunInterrupted", Type(last));
        Assert.True(File.Exists(last.GetProperty("Checkpoint").GetString()));
        var steps = events.Where(e => Type(e) == "StepCompleted").ToList();
        Assert.Equal(Enumerable.Range(0, steps.Count).Select(i => (long)i), steps.Select(e => e.GetProperty("Step").GetInt64()));
        // After each return of the worker, steps were planned over two workers again.
        var joins = events.Select((e, i) => (e, i)).Where(x => Type(x.e) == "WorkerJoined" && x.e.GetProperty("WorkerId").GetString()!.EndsWith(worker)).ToList();
        Assert.Equal(3, joins.Count);
        foreach (var (_, index) in joins.Skip(1))
            Assert.Contains(events.Skip(index), e => Type(e) == "StepCompleted" && e.GetProperty("Shares").GetArrayLength() == 2);
    }
}
