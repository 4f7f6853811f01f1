using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>The multi-node cluster as real processes: a coordinator and worker processes on loopback.</summary>
public sealed class ClusterProcessTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_worker_killed_with_sigkill_mid_run_loses_no_step()
    {
        int port = NodeProcess.FreePort();
        const int steps = 300;
        using var coordinator = new NodeProcess("node", "--role", "coordinator", "--port", port.ToString(), "--min-workers", "2",
            "--dataset", "synthetic", "--steps", steps.ToString(), "--global-batch", "96", "--eval-every", "0",
            "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", "killed");
        var workers = Enumerable.Range(0, 3)
            .Select(_ => new NodeProcess("node", "--role", "worker", "--seed", $"127.0.0.1:{port}", "--threads", "1")).ToList();
        try
        {
            // Once a tenth of the run is done, one worker dies without a word.
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
            Assert.Contains(events, e => Type(e) == "WorkerLeft");
            // The survivors finish and leave cleanly.
            Assert.Equal(0, await workers[0].WaitForExitAsync(Timeout));
            Assert.Equal(0, await workers[2].WaitForExitAsync(Timeout));
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

    [Fact]
    public async Task A_worker_whose_seed_does_not_answer_exits_naming_the_seed()
    {
        int port = NodeProcess.FreePort();
        using var worker = new NodeProcess("node", "--role", "worker", "--seed", $"127.0.0.1:{port}", "--join-timeout", "3");
        int exit = await worker.WaitForExitAsync(Timeout);
        Assert.Equal(3, exit);
        Assert.Contains($"no seed node answered at 127.0.0.1:{port} within 3 s", string.Join('\n', worker.StdErr));
    }

    [Fact]
    public void Cuda_on_a_cpu_build_is_refused_at_start()
    {
        var outcome = CliProcess.Run("node", "--role", "worker", "--seed", "127.0.0.1:1", "--device", "cuda");
        BadInputTests.AssertRefused(outcome, "--device cuda: this build uses TorchSharp-cpu and finds no CUDA device here; use --device cpu");
    }
}
