using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary><c>--reduce ring</c> across real processes on loopback: faults in the middle of a reduction, injected where they hurt.</summary>
public sealed class RingProcessTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("ring-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string[] TrainFlags(string runId) =>
    [
        "--dataset", "synthetic", "--steps", "40", "--global-batch", "64", "--optimizer", "momentum", "--lr", "0.05",
        "--eval-every", "0", "--train-eval-samples", "0", "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", runId,
        "--export-params", Path.Combine(_dir, runId + ".f32"),
    ];

    /// <summary>
    /// A coordinator and four worker processes reduce by ring; one worker SIGKILLs itself in the
    /// middle of its reduce-scatter (step 8), one in the middle of its all-gather (step 16), and one
    /// SIGSTOPs itself mid reduce-scatter (step 24) and stays stopped, so only the failure detector
    /// can tell. Each time the ring is re-formed from the survivors, down to one member (a ring of
    /// one); every step commits exactly its global batch, and the run ends within 1e-4 of the plain
    /// loop (re-plans change only the order of additions).
    /// </summary>
    [Fact]
    public async Task Workers_killed_and_stopped_mid_reduction_lose_no_sample()
    {
        var reference = CliProcess.Run(["train", "--engine", "plain", .. TrainFlags("reference")]);
        Assert.True(reference.ExitCode == 0, reference.StdErr);
        int port = NodeProcess.FreePort();
        using var coordinator = new NodeProcess(["node", "--role", "coordinator", "--port", port.ToString(), "--reduce", "ring", "--start-workers", "4",
            "--min-workers", "1", "--step-deadline", "30", .. TrainFlags("ring")]);
        string[] faults = ["", "kill@reduce@8", "kill@gather@16", "stop@reduce@24"];
        var workers = faults.Select(fault => new NodeProcess(
        [
            "node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--join-timeout", "60",
            .. fault.Length > 0 ? new[] { "--testing-ring-fault", fault } : [],
        ])).ToList();
        try
        {
            int exit = await coordinator.WaitForExitAsync(Timeout);
            Assert.True(exit == 0, string.Join('\n', coordinator.StdErr.Concat(coordinator.StdOut)));
            Assert.Equal(40, JsonDocument.Parse(coordinator.StdOut.Last()).RootElement.GetProperty("steps").GetInt64());

            var events = File.ReadAllLines(Path.Combine(_dir, "runs", "ring", "events.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";
            var steps = events.Where(e => Type(e) == "StepCompleted").ToList();
            Assert.Equal(Enumerable.Range(0, 40), steps.Select(e => e.GetProperty("Step").GetInt32()));
            Assert.All(steps, e => Assert.Equal(64, e.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
            var left = events.Where(e => Type(e) == "WorkerLeft").Select(e => e.GetProperty("Reason").GetString()).ToList();
            Assert.Equal(3, left.Count);
            Assert.Contains("unreachable", left); // the stopped one: only the failure detector could tell
            Assert.Single(steps[^1].GetProperty("Shares").EnumerateArray()); // a ring of one at the end
            // The first ring, one per worker lost, and — when a survivor's report that the killed worker broke its all-gather
            // of step 16 arrives after the ring without that worker was already formed — one more: that report marks the
            // ring faulty (the survivor gets the whole model pushed), so the next step forms a new one. Which comes first
            // is timing, and a ring names only the first fault since the last one: both are correct. That first fault may
            // also be a survivor's report that its ring link broke, when it reached the coordinator before the loss did
            // (then it is the reason the reduction was abandoned).
            var rings = events.Where(e => Type(e) == "RingFormed").Select(e => e.GetProperty("Reason").GetString()!).ToList();
            var abandoned = events.Where(e => Type(e) == "ReductionAborted").Select(e => e.GetProperty("Reason").GetString()!).ToHashSet();
            Assert.Equal("the run's first ring", rings[0]);
            Assert.All(rings.Skip(1), r => Assert.True(r.Contains("left the ring") || r.Contains("all-gather of step 16 broke") || abandoned.Contains(r), r));
            Assert.InRange(rings.Count, 4, 5);

            double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "reference.f32"), Path.Combine(_dir, "ring.f32"));
            Assert.True(worst <= 1e-4, $"the ring run with three faults differs from the plain loop by {worst:E2}");
            Assert.Equal(0, await workers[0].WaitForExitAsync(Timeout));
        }
        finally
        {
            workers[3].Signal(NodeProcess.SigCont); // so that it can be killed and reaped
            foreach (var w in workers) w.Dispose();
        }
    }
}
