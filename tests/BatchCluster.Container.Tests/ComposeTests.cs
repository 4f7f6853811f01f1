using System.Diagnostics;
using System.Text.Json;

namespace BatchCluster.Container.Tests;

/// <summary>
/// The README's container commands, run as written (README "Containers"), with docker-compose.yml as it is: the image that
/// scripts/docker-image.sh builds runs the coordinator and two worker containers on the compose network (198.18.77.0/24)
/// over mutual TLS, trains exactly as the plain loop does while a worker container is killed mid-run, and `down -v` leaves
/// nothing of the project behind; the `train` service runs the local simulated cluster, exact too.
/// </summary>
[Collection(DockerCollection.Name)]
public sealed class ComposeTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    private readonly string _dir = Directory.CreateTempSubdirectory("compose-e2e-").FullName;
    private readonly string _project = $"bctest{Environment.ProcessId}";
    private readonly DockerEngine _engine;

    public ComposeTests(DockerEngine engine) => _engine = engine;

    public void Dispose()
    {
        Compose(new Dictionary<string, string>(), "down", "-v", "--remove-orphans");
        Directory.Delete(_dir, recursive: true);
    }

    private const string Training = "--global-batch 128 --optimizer momentum --lr 0.05 --eval-every 0 --train-eval-samples 0 --seed 3";

    /// <summary>
    /// <c>docker compose</c> where the Compose plugin is installed, else Debian 12's <c>docker-compose</c>: the README gives
    /// both, with the same arguments. The project is named apart, so the test never touches a user's own.
    /// </summary>
    private CliProcess.Outcome Compose(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        bool plugin = Shell.Run("docker", ["compose", "version"], TimeSpan.FromSeconds(30)).ExitCode == 0;
        string[] prefix = ["-p", _project, "-f", Path.Combine(CliProcess.RepositoryRoot(), "docker-compose.yml")];
        return plugin
            ? Shell.Run("docker", ["compose", .. prefix, .. args], Timeout, environment)
            : Shell.Run("docker-compose", [.. prefix, .. args], Timeout, environment);
    }

    private string[] Containers(string service) =>
        Lines(Shell.Run("docker", ["ps", "-aq", "--filter", $"label=com.docker.compose.project={_project}", "--filter", $"label=com.docker.compose.service={service}"],
            TimeSpan.FromSeconds(30)).StdOut);

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private string PlainReference(int steps)
    {
        string path = Path.Combine(_dir, "reference.f32");
        var outcome = CliProcess.Run(["train", "--engine", "plain", .. Training.Split(' '), "--steps", steps.ToString(), "--runs-dir", Path.Combine(_dir, "plain"),
            "--export-params", path]);
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);
        return path;
    }

    private static List<JsonElement> Events(string log) => File.ReadAllLines(log).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";

    [DockerFact]
    public async Task The_compose_cluster_trains_exactly_loses_no_sample_to_a_killed_worker_container_and_leaves_nothing_behind()
    {
        Assert.Contains("batchcluster:latest:", _engine.ImageBuildOutput); // the script printed the image's size
        const int steps = 120;
        string runs = Directory.CreateDirectory(Path.Combine(_dir, "runs")).FullName;
        var environment = new Dictionary<string, string>
        {
            ["BATCHCLUSTER_RUNS"] = runs,
            ["BATCHCLUSTER_TRAIN"] = $"{Training} --steps {steps} --run-id compose --export-params /runs/compose.f32",
            // Slowed on purpose (a step of tens of ms): the run must outlast the test's reaction to its first steps.
            ["BATCHCLUSTER_WORKER"] = "--threads 1 --testing-slowdown 20",
        };
        var up = Compose(environment, "up", "-d", "--scale", "worker=2", "coordinator", "worker");
        Assert.True(up.ExitCode == 0, up.StdErr);

        // A worker container is killed (SIGKILL, no goodbye) once both work and the run is under way.
        string log = Path.Combine(runs, "compose", "events.clef");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(log) || File.ReadLines(log).Count(l => l.Contains("\"StepCompleted\"")) < 20)
        {
            Assert.True(clock.Elapsed < Timeout, "the compose cluster did not reach step 20");
            await Task.Delay(100); // polling the coordinator's event log, written by another process
        }
        string victim = Containers("worker")[0];
        Assert.Equal(0, Shell.Run("docker", ["kill", victim], TimeSpan.FromSeconds(30)).ExitCode);

        string coordinator = Containers("coordinator").Single();
        var wait = Shell.Run("docker", ["wait", coordinator], Timeout);
        Assert.True(wait.StdOut.Trim() == "0", Shell.Run("docker", ["logs", coordinator], Timeout).StdErr);
        string summaryLine = Lines(Shell.Run("docker", ["logs", coordinator], Timeout).StdOut).Last();
        Assert.Equal(steps, JsonDocument.Parse(summaryLine).RootElement.GetProperty("steps").GetInt64());

        // No sample lost: every step, each of the whole batch; the killed worker left during the run, not after it.
        var events = Events(log);
        var stepEvents = events.Where(e => Type(e) == "StepCompleted").ToList();
        Assert.Equal(Enumerable.Range(0, steps), stepEvents.Select(e => e.GetProperty("Step").GetInt32()));
        Assert.All(stepEvents, e => Assert.Equal(128, e.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
        int leftAt = events.FindIndex(e => Type(e) == "WorkerLeft");
        Assert.True(leftAt >= 0 && leftAt < events.FindIndex(e => Type(e) == "RunCompleted"), "the killed worker's loss was not seen during the run");

        double worst = CliProcess.MaxAbsDifference(PlainReference(steps), Path.Combine(runs, "compose.f32"));
        Assert.True(worst <= 1e-4, $"the compose cluster differs from the plain loop by {worst:E2}");

        // down -v: no container, network or volume of the project is left.
        var down = Compose(environment, "down", "-v");
        Assert.True(down.ExitCode == 0, down.StdErr);
        string label = $"label=com.docker.compose.project={_project}";
        Assert.Empty(Lines(Shell.Run("docker", ["ps", "-aq", "--filter", label], Timeout).StdOut));
        Assert.Empty(Lines(Shell.Run("docker", ["network", "ls", "-q", "--filter", label], Timeout).StdOut));
        Assert.Empty(Lines(Shell.Run("docker", ["volume", "ls", "-q", "--filter", label], Timeout).StdOut));
    }

    /// <summary>
    /// The README's monitoring commands: the metrics profile's Prometheus (the image --with-prometheus makes from Debian's
    /// package, as the README says where prom/prometheus cannot be pulled) finds the coordinator and both worker containers
    /// through the compose network's DNS (cluster-config/prometheus.yml), scrapes all three, and the step counter it stores
    /// grows while the run goes on. Queried where the README points a user: the published port on 127.0.0.1.
    /// </summary>
    [DockerFact]
    public async Task The_metrics_profile_scrapes_every_node_of_the_compose_cluster()
    {
        Assert.Contains("batchcluster-prometheus:local", _engine.ImageBuildOutput);
        string runs = Directory.CreateDirectory(Path.Combine(_dir, "runs")).FullName;
        int port = NodeProcess.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["BATCHCLUSTER_RUNS"] = runs,
            // Long enough to outlast the test; the test ends it with down.
            ["BATCHCLUSTER_TRAIN"] = $"{Training} --steps 100000 --run-id metrics",
            ["BATCHCLUSTER_WORKER"] = "--threads 1 --testing-slowdown 5",
            ["BATCHCLUSTER_PROMETHEUS_IMAGE"] = "batchcluster-prometheus:local",
            ["BATCHCLUSTER_PROMETHEUS_PORT"] = port.ToString(),
        };
        var up = Compose(environment, "up", "-d", "--scale", "worker=2", "coordinator", "worker");
        Assert.True(up.ExitCode == 0, up.StdErr);
        var prometheus = Compose(environment, "--profile", "metrics", "up", "-d", "prometheus");
        Assert.True(prometheus.ExitCode == 0, prometheus.StdErr);

        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        async Task<double?> Query(string promql)
        {
            try
            {
                string body = await client.GetStringAsync($"http://127.0.0.1:{port}/api/v1/query?query={Uri.EscapeDataString(promql)}");
                var result = JsonDocument.Parse(body).RootElement.GetProperty("data").GetProperty("result");
                return result.GetArrayLength() == 0 ? null : double.Parse(result[0].GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (HttpRequestException) { return null; } // Prometheus is still starting
        }
        async Task<double> WaitFor(string promql, Func<double, bool> good, string what)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (await Query(promql) is double value && good(value)) return value;
                Assert.True(clock.Elapsed < Timeout, $"Prometheus never saw {what} ({promql} = {await Query(promql)})");
                await Task.Delay(500); // polling another process's scrapes (every 2 s)
            }
        }
        await WaitFor("count(up{job=\"batchcluster\"} == 1)", v => v == 3, "three nodes up");
        await WaitFor("count(batchcluster_worker_share_duration_seconds_count > 0)", v => v == 2, "both workers' shares");
        double steps = await WaitFor("sum(batchcluster_steps_total)", v => v > 0, "a step");
        await WaitFor("sum(batchcluster_steps_total)", v => v > steps, "the step counter grow");
        Assert.Equal(2, await Query("max(batchcluster_workers_ready)"));

        var down = Compose(environment, "--profile", "metrics", "down", "-v");
        Assert.True(down.ExitCode == 0, down.StdErr);
        Assert.Empty(Lines(Shell.Run("docker", ["ps", "-aq", "--filter", $"label=com.docker.compose.project={_project}"], Timeout).StdOut));
    }

    [DockerFact]
    public void The_train_service_runs_the_local_cluster_exactly()
    {
        const int steps = 30;
        string runs = Directory.CreateDirectory(Path.Combine(_dir, "runs")).FullName;
        var environment = new Dictionary<string, string>
        {
            ["BATCHCLUSTER_RUNS"] = runs,
            ["BATCHCLUSTER_TRAIN"] = $"{Training} --steps {steps} --run-id train --export-params /runs/train.f32",
        };
        var run = Compose(environment, "run", "--rm", "train");
        Assert.True(run.ExitCode == 0, run.StdErr);
        Assert.Equal(steps, JsonDocument.Parse(Lines(run.StdOut).Last()).RootElement.GetProperty("steps").GetInt64());
        double worst = CliProcess.MaxAbsDifference(PlainReference(steps), Path.Combine(runs, "train.f32"));
        Assert.True(worst <= 1e-4, $"the train service differs from the plain loop by {worst:E2}");
    }
}
