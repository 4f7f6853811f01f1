using System.Text.Json;
using BatchCluster.Cli.Processes;
using static BatchCluster.EndToEnd.Tests.Hosts.ReadmeCommands;

namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary>
/// The README's "Several machines" instructions, executed: the coordinator and worker commands are
/// read from the README and run on three simulated hosts (a network namespace and address each,
/// 100 Mbit/s links), one worker configured by flags and one by the environment variables the
/// README names. The README's `certs` commands make the authority and the certificates first, so the
/// nodes run with mutual TLS as the README says (beyond loopback a node refuses to start without it).
/// The run must end where the plain loop ends (≤ 1e-4 after 30 steps) although one worker host is
/// killed (SIGKILL) mid-run, with no step and no sample lost.
/// </summary>
public sealed class ReadmeOnSimulatedHostsTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private const int Steps = 30, GlobalBatch = 64;
    private readonly string _dir = Directory.CreateTempSubdirectory("hosts-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [SimulatedHostsFact]
    public async Task The_readme_commands_on_separate_hosts_train_exactly_and_lose_nothing_to_a_killed_worker()
    {
        var readme = Read();
        Assert.Contains("BATCHCLUSTER_HOST", readme.Text);
        Assert.Contains("BATCHCLUSTER_SEEDS", readme.Text);
        string readmeCoordinator = Value(readme.Coordinator, "--host"), readmeWorker = Value(readme.Worker, "--host");
        string readmeSeeds = Value(readme.Worker, "--seed-nodes");
        Assert.Equal($"{readmeCoordinator}:{Value(readme.Coordinator, "--port")}", readmeSeeds);

        var reference = CliProcess.Run(["train", "--engine", "plain", .. TrainFlags("reference")]);
        Assert.True(reference.ExitCode == 0, reference.StdErr);

        // 100 Mbit/s links: a step waits ~60 ms per worker for its parameters, long enough to kill a worker mid-run.
        using var network = SimulatedNetwork.Up(3, rate: "100mbit");
        var hosts = network.Hosts;
        var addresses = new Dictionary<string, string> { [readmeCoordinator] = hosts[0].Address, [readmeWorker] = hosts[1].Address };

        // The README's certificates, in the test's directory ("certs" and "certs/…" there), for the simulated addresses.
        Assert.Equal(["init", "add"], readme.Certificates.Select(c => c[1]));
        string[] Here(string[] command) => command.Select((a, i) =>
            i > 0 && a == "certs" ? Path.Combine(_dir, "certs") : a.StartsWith("certs/", StringComparison.Ordinal) ? Path.Combine(_dir, a) : a).ToArray();
        foreach (var certs in readme.Certificates)
        {
            var made = CliProcess.Run(At(Here(certs), addresses));
            Assert.True(made.ExitCode == 0, made.StdErr);
        }
        var tls = new Dictionary<string, string> { ["BATCHCLUSTER_TLS_PASSWORD"] = File.ReadAllText(Path.Combine(_dir, "certs", "password")).Trim() };
        // The README's coordinator line with the test's run in place of its five epochs of four workers.
        string[] coordinatorArgs =
        [
            .. At(Here(Without(readme.Coordinator, "--start-workers", "--min-workers", "--epochs")), addresses),
            "--start-workers", "2", "--min-workers", "1", "--checkpoint-dir", Path.Combine(_dir, "checkpoints"), .. TrainFlags("hosts"),
        ];
        string[] workerByFlags = At(Here(readme.Worker), addresses);
        string[] workerByEnvironment = Here(Without(readme.Worker, "--host", "--seed-nodes"));
        var environment = new Dictionary<string, string>(tls)
        {
            ["BATCHCLUSTER_HOST"] = hosts[2].Address,
            ["BATCHCLUSTER_SEEDS"] = At([readmeSeeds], addresses)[0],
        };

        using var coordinator = NodeProcess.On(hosts[0].Namespace, tls, coordinatorArgs);
        using var first = NodeProcess.On(hosts[1].Namespace, tls, workerByFlags);
        using var second = NodeProcess.On(hosts[2].Namespace, environment, workerByEnvironment);

        await coordinator.WaitForLineAsync(l => l.Contains("2 workers ready"), Timeout);
        await coordinator.WaitForLineAsync(l => l.StartsWith("progress: step", StringComparison.Ordinal), Timeout);
        first.Kill();
        int exit = await coordinator.WaitForExitAsync(Timeout);
        Assert.True(exit == 0, string.Join('\n', coordinator.StdErr.Concat(coordinator.StdOut)));
        Assert.Equal(0, await second.WaitForExitAsync(Timeout));

        using var summary = JsonDocument.Parse(coordinator.StdOut.Last());
        Assert.Equal(Steps, summary.RootElement.GetProperty("steps").GetInt64());
        var events = File.ReadAllLines(Path.Combine(_dir, "runs", "hosts", "events.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";
        // Each worker joined from its own host, its tensors over the data plane.
        var joined = events.Where(e => Type(e) == "WorkerJoined").ToList();
        Assert.Equal([hosts[1].Address, hosts[2].Address], joined.Select(e => HostOf(e.GetProperty("WorkerAddress").GetString()!)).Order());
        Assert.All(joined, e => Assert.StartsWith($"data plane {hosts[0].Address}:", e.GetProperty("Transport").GetString()));
        // Every step, the whole global batch: the killed worker's share was re-planned, nothing lost.
        var steps = events.Where(e => Type(e) == "StepCompleted").ToList();
        Assert.Equal(Enumerable.Range(0, Steps), steps.Select(e => e.GetProperty("Step").GetInt32()));
        Assert.All(steps, e => Assert.Equal(GlobalBatch, e.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
        Assert.Contains(events, e => Type(e) == "WorkerLeft");
        Assert.Contains(steps, e => e.GetProperty("Shares").GetArrayLength() == 1); // the run went on with one worker

        double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "reference.f32"), Path.Combine(_dir, "hosts.f32"));
        Assert.True(worst <= 1e-4, $"the run on simulated hosts differs from the plain loop by {worst:E2}");
    }

    /// <summary>The IPv4 address in an actor address ("akka.tcp://system@198.18.0.2:41234/…" → "198.18.0.2").</summary>
    private static string HostOf(string address) => System.Text.RegularExpressions.Regex.Match(address, @"\d+\.\d+\.\d+\.\d+").Value;

    private string[] TrainFlags(string runId) =>
    [
        "--dataset", "synthetic", "--steps", Steps.ToString(), "--global-batch", GlobalBatch.ToString(), "--optimizer", "momentum", "--lr", "0.05",
        "--eval-every", "0", "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", runId, "--export-params", Path.Combine(_dir, runId + ".f32"),
    ];
}
