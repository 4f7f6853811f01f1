using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>The multi-node cluster as real processes: a coordinator and worker processes on loopback.</summary>
public sealed class ClusterProcessTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// A worker process dies without a word mid-run (SIGKILL): its data connection breaks, the
    /// coordinator counts that as the worker's failure, re-plans, and the run loses no step.
    /// </summary>
    [Fact]
    public async Task A_worker_killed_with_sigkill_mid_run_loses_no_step()
    {
        int port = NodeProcess.FreePort();
        const int steps = 300;
        // All three from the first step (without --start-workers the run could finish on two before the third joined).
        using var coordinator = new NodeProcess("node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "3", "--min-workers", "2",
            "--dataset", "synthetic", "--steps", steps.ToString(), "--global-batch", "96", "--eval-every", "0",
            "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", "killed");
        // Slowed on purpose (a step of a few ms instead of under one), so that the run outlasts the test's reaction.
        var workers = Enumerable.Range(0, 3)
            .Select(_ => new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--testing-slowdown", "30")).ToList();
        try
        {
            // Once all three work and a tenth of the run is done, one worker dies without a word.
            await coordinator.WaitForLineAsync(l => l.Contains("3 workers ready"), Timeout);
            await coordinator.WaitForLineAsync(l => l.StartsWith("progress: step") && !l.Contains("(0%)"), Timeout);
            workers[1].Kill();
            int exit = await coordinator.WaitForExitAsync(Timeout);
            Assert.True(exit == 0, string.Join('\n', coordinator.StdErr.Concat(coordinator.StdOut)));

            using var summary = JsonDocument.Parse(coordinator.StdOut.Last());
            Assert.Equal(steps, summary.RootElement.GetProperty("steps").GetInt64());
            Assert.Equal(3, summary.RootElement.GetProperty("workers").GetInt32());

            var events = File.ReadAllLines(Path.Combine(_dir, "runs", "killed", "events.clef"))
                .Select(l => JsonDocument.Parse(l).RootElement).ToList();
            string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";
            var stepEvents = events.Where(e => Type(e) == "StepCompleted").ToList();
            Assert.Equal(Enumerable.Range(0, steps), stepEvents.Select(e => e.GetProperty("Step").GetInt32()));
            Assert.All(stepEvents, e => Assert.Equal(96, e.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
            // The dead process's connections break at once — its data connection and its remoting connection, whichever the
            // coordinator hears of first (a CI run saw each) — and the coordinator loses the worker on that, long before the
            // failure detector would call it unreachable (it re-plans the share the worker held, if any).
            var left = events.Single(e => Type(e) == "WorkerLeft");
            string reason = left.GetProperty("Reason").GetString()!;
            Assert.True(reason.StartsWith("data connection lost") || reason == "its connection dropped", $"the worker was lost for '{reason}'");
            // The survivors finish and leave cleanly.
            Assert.Equal(0, await workers[0].WaitForExitAsync(Timeout));
            Assert.Equal(0, await workers[2].WaitForExitAsync(Timeout));
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

    /// <summary>
    /// The coordinator node dies (SIGKILL); restarted with --resume on the same port, it continues
    /// from its last checkpoint, the surviving worker nodes rejoin by themselves, and the run ends
    /// where the plain reference loop ends (within 1e-4, the cross-layout bound).
    /// </summary>
    [Fact]
    public async Task A_coordinator_restarted_with_resume_continues_the_run_with_its_workers()
    {
        int port = NodeProcess.FreePort();
        RunPlainReference();
        string[] Coordinator(string runId, params string[] more) => CoordinatorFlags(runId, port, more);
        var workers = Enumerable.Range(0, 2)
            .Select(_ => new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--join-timeout", "60",
                "--testing-slowdown", "30")).ToList(); // slowed on purpose: the first coordinator must still be running at 30 %
        try
        {
            using (var first = new NodeProcess(Coordinator("first")))
            {
                await first.WaitForLineAsync(l => l.StartsWith("progress: step") && (l.Contains("(30%)") || l.Contains("(40%)")), Timeout);
                first.Kill();
                await first.WaitForExitAsync(Timeout);
            }
            Assert.NotEmpty(Directory.GetFiles(Checkpoints, "*.bcck"));

            using var second = new NodeProcess(Coordinator("second", "--resume"));
            int exit = await second.WaitForExitAsync(Timeout);
            Assert.True(exit == 0, string.Join('\n', second.StdErr.Concat(second.StdOut)));
            Assert.Equal(300, JsonDocument.Parse(second.StdOut.Last()).RootElement.GetProperty("steps").GetInt64());
            foreach (var w in workers) Assert.Equal(0, await w.WaitForExitAsync(Timeout));

            double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "reference.f32"), Path.Combine(_dir, "second.f32"));
            Assert.True(worst <= 1e-4, $"resumed cluster run differs from the plain loop by {worst:E2}");
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

    /// <summary>
    /// With a standby coordinator node up, killing the coordinator node moves the coordinator
    /// singleton to the standby, which resumes from the newest checkpoint; the workers re-register
    /// by themselves and the run ends where the plain loop ends (within 1e-4).
    /// </summary>
    [Fact]
    public async Task The_coordinator_moves_to_a_standby_node_and_resumes_from_the_checkpoint()
    {
        int primaryPort = NodeProcess.FreePort(), standbyPort = NodeProcess.FreePort();
        RunPlainReference();
        string[] Coordinator(string runId, int port, params string[] more) => CoordinatorFlags(runId, port, more);
        using var primary = new NodeProcess(Coordinator("primary", primaryPort));
        using var standby = new NodeProcess(Coordinator("standby", standbyPort, "--standby", "--seed-nodes", $"127.0.0.1:{primaryPort}"));
        // Slowed on purpose (a step of ~15 ms instead of ~0.5 ms), so that the run is still in its first half once the standby is in the cluster.
        var workers = Enumerable.Range(0, 2).Select(_ => new NodeProcess(
            "node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{primaryPort},127.0.0.1:{standbyPort}", "--threads", "1", "--join-timeout", "60",
            "--testing-slowdown", "50")).ToList();
        try
        {
            await standby.WaitForLineAsync(l => l.Contains("Coordinator node up"), Timeout);
            await primary.WaitForLineAsync(l => l.StartsWith("progress: step") && (l.Contains("(30%)") || l.Contains("(40%)")), Timeout);
            primary.Kill();
            int exit = await standby.WaitForExitAsync(Timeout);
            Assert.True(exit == 0, string.Join('\n', standby.StdErr.Concat(standby.StdOut).Concat(["--- primary:"]).Concat(primary.StdErr)));
            Assert.Equal(300, JsonDocument.Parse(standby.StdOut.Last()).RootElement.GetProperty("steps").GetInt64());
            Assert.Contains("\"EventType\":\"ResumedFromCheckpoint\"", File.ReadAllText(Path.Combine(_dir, "runs", "standby", "events.clef")));
            foreach (var w in workers) Assert.Equal(0, await w.WaitForExitAsync(Timeout));

            double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "reference.f32"), Path.Combine(_dir, "standby.f32"));
            Assert.True(worst <= 1e-4, $"the run continued on the standby differs from the plain loop by {worst:E2}");
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }


    private string Checkpoints => Path.Combine(_dir, "checkpoints");

    /// <summary>The run both coordinator tests make: 300 momentum steps on the synthetic set, parameters exported as &lt;run id&gt;.f32.</summary>
    private string[] TrainFlags(string runId) =>
    [
        "--dataset", "synthetic", "--steps", "300", "--global-batch", "64", "--optimizer", "momentum", "--lr", "0.05",
        "--eval-every", "0", "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", runId, "--export-params", Path.Combine(_dir, runId + ".f32"),
    ];

    private string[] CoordinatorFlags(string runId, int port, string[] more) =>
    [
        "node", "--role", "coordinator", "--port", port.ToString(), "--min-workers", "2", "--checkpoint-every", "20",
        "--checkpoint-dir", Checkpoints, .. TrainFlags(runId), .. more,
    ];

    /// <summary>The same run in the plain reference loop, exported as reference.f32.</summary>
    private void RunPlainReference()
    {
        var reference = CliProcess.Run(["train", "--engine", "plain", .. TrainFlags("reference")]);
        Assert.True(reference.ExitCode == 0, reference.StdErr);
    }

    [Fact]
    public async Task A_worker_whose_seed_does_not_answer_exits_naming_the_seed()
    {
        int port = NodeProcess.FreePort();
        using var worker = new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--join-timeout", "3");
        int exit = await worker.WaitForExitAsync(Timeout);
        Assert.Equal(3, exit);
        Assert.Contains($"no seed node answered at 127.0.0.1:{port} within 3 s", string.Join('\n', worker.StdErr));
    }

    /// <summary>
    /// A worker node on the ILGPU backend learns only when accepted that the run trains the CNN, which that backend
    /// does not run: it says so and exits non-zero (a decision, not a crash restarted into the same failure); a
    /// TorchSharp worker that joins then trains the run to its end.
    /// </summary>
    [Fact]
    public async Task A_worker_whose_device_cannot_run_the_model_leaves_with_the_reason()
    {
        int port = NodeProcess.FreePort();
        using var coordinator = new NodeProcess("node", "--role", "coordinator", "--port", port.ToString(), "--model", "cnn",
            "--dataset", "synthetic", "--steps", "5", "--global-batch", "32", "--eval-every", "0", "--train-eval-samples", "0",
            "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", "cnn-run");
        using var gpuWorker = new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--device", "ilgpu-cpu");
        int exit = await gpuWorker.WaitForExitAsync(Timeout);
        Assert.NotEqual(0, exit);
        Assert.Contains("runs the MLP only (--model mlp); 'cnn' needs --device cpu", string.Join('\n', gpuWorker.StdErr.Concat(gpuWorker.StdOut)));
        using var cpuWorker = new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1");
        Assert.True(await coordinator.WaitForExitAsync(Timeout) == 0, string.Join('\n', coordinator.StdErr));
        using var summary = JsonDocument.Parse(coordinator.StdOut.Last());
        Assert.Equal(5, summary.RootElement.GetProperty("steps").GetInt64());
    }

    /// <summary>A worker node on a machine without a CUDA device (CI's) is refused before it joins, naming what was looked for.</summary>
    [Fact]
    public void Cuda_where_there_is_none_is_refused_at_start()
    {
        if (File.Exists("/dev/nvidia0")) return; // a GPU machine opens it (scripts/gpu-check.sh covers that)
        var outcome = CliProcess.Run("node", "--role", "worker", "--seed-nodes", "127.0.0.1:1", "--device", "cuda");
        BadInputTests.AssertRefused(outcome, "--device cuda: ILGPU found no CUDA device (it looks for the NVIDIA driver's libcuda.so and the devices it lists); use --device cpu or ilgpu-cpu here");
    }
}
