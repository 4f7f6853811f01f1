using System.Text.Json;
using BatchCluster.Cli.Processes;

namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary>
/// <c>--reduce ring</c> on four simulated worker hosts (a network namespace and address each, 1 Gbit/s
/// links): the ring's links run between the hosts' own addresses; one host SIGKILLs itself in the
/// middle of a reduce-scatter. The run ends within 1e-4 of the plain loop after 30 steps with no
/// sample lost, and the coordinator's link carries one model each way per step whatever the number
/// of hosts (4, then 3).
/// </summary>
public sealed class RingOnSimulatedHostsTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private const int Steps = 30, GlobalBatch = 64, Parameters = 203_530;
    private readonly string _dir = Directory.CreateTempSubdirectory("ring-hosts-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string[] TrainFlags(string runId) =>
    [
        "--dataset", "synthetic", "--steps", Steps.ToString(), "--global-batch", GlobalBatch.ToString(), "--optimizer", "momentum", "--lr", "0.05",
        "--eval-every", "0", "--train-eval-samples", "0", "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", runId,
        "--export-params", Path.Combine(_dir, runId + ".f32"),
    ];

    [SimulatedHostsFact]
    public async Task Four_hosts_reduce_by_ring_exactly_and_lose_nothing_to_a_host_killed_mid_reduction()
    {
        var reference = CliProcess.Run(["train", "--engine", "plain", .. TrainFlags("reference")]);
        Assert.True(reference.ExitCode == 0, reference.StdErr);
        using var network = SimulatedNetwork.Up(5, rate: "1gbit");
        var hosts = network.Hosts;
        var none = new Dictionary<string, string>();
        using var coordinator = NodeProcess.On(hosts[0].Namespace, none, ["node", "--role", "coordinator", "--host", hosts[0].Address, "--insecure", "--port", "4053",
            "--reduce", "ring", "--start-workers", "4", "--min-workers", "1", .. TrainFlags("ring")]);
        var workers = hosts.Skip(1).Select(h => NodeProcess.On(h.Namespace, none,
        [
            "node", "--role", "worker", "--host", h.Address, "--insecure", "--seed-nodes", $"{hosts[0].Address}:4053", "--threads", "1", "--join-timeout", "60",
            .. h.Index == 3 ? new[] { "--testing-ring-fault", "kill@reduce@12" } : [],
        ])).ToList();
        try
        {
            int exit = await coordinator.WaitForExitAsync(Timeout);
            Assert.True(exit == 0, string.Join('\n', coordinator.StdErr.Concat(coordinator.StdOut)));
            var events = File.ReadAllLines(Path.Combine(_dir, "runs", "ring", "events.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";
            var steps = events.Where(e => Type(e) == "StepCompleted").ToList();
            Assert.Equal(Enumerable.Range(0, Steps), steps.Select(e => e.GetProperty("Step").GetInt32()));
            Assert.All(steps, e => Assert.Equal(GlobalBatch, e.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
            // Lost at once on a broken connection — the data plane's or remoting's, whichever the coordinator hears of first.
            string reason = events.Single(e => Type(e) == "WorkerLeft").GetProperty("Reason").GetString()!;
            Assert.True(reason.StartsWith("data connection lost") || reason == "its connection dropped", $"the worker was lost for '{reason}'");
            Assert.Equal(4, steps[1].GetProperty("Shares").GetArrayLength());
            Assert.Equal(3, steps[^1].GetProperty("Shares").GetArrayLength());
            // The ring's members are the hosts' own addresses, in registration order.
            var rings = events.Where(e => Type(e) == "RingFormed").ToList();
            Assert.Equal(2, rings.Count);
            Assert.All(rings[0].GetProperty("RingMembers").EnumerateArray(), m => Assert.Contains("198.18.0.", m.GetString()));
            // One model each way through the coordinator's link per step, on 4 hosts as on 3 (steps without faults; step 0 sends every host the whole model).
            long oneModelEachWay = 2L * 4 * Parameters + 4L * GlobalBatch;
            Assert.All(steps.Skip(1).Where(e => e.GetProperty("Step").GetInt32() != 12), e => Assert.Equal(oneModelEachWay, e.GetProperty("BytesMoved").GetInt64()));

            double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "reference.f32"), Path.Combine(_dir, "ring.f32"));
            Assert.True(worst <= 1e-4, $"the ring run on simulated hosts differs from the plain loop by {worst:E2}");
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }
}
