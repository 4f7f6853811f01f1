using System.Diagnostics;
using System.Globalization;
using System.Net.Http;
using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// Live metrics (docs/monitoring.md) as operators use them: the real Prometheus server (Debian's <c>prometheus</c>) scrapes a
/// coordinator node and two worker nodes that serve <c>--metrics-port</c>; every target is up, <c>promtool check metrics</c>
/// accepts each node's page, and over Prometheus' HTTP API the step counter and the training loss move while the run trains,
/// and each worker reports its shares.
/// </summary>
public sealed class MonitoringTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private readonly string _dir = Directory.CreateTempSubdirectory("monitoring-e2e-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public void Dispose()
    {
        _http.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [PrometheusFact]
    public async Task Prometheus_scrapes_every_node_of_a_running_cluster_and_sees_its_steps_and_loss_move()
    {
        int port = NodeProcess.FreePort(), prometheusPort = NodeProcess.FreePort();
        int[] metricsPorts = [NodeProcess.FreePort(), NodeProcess.FreePort(), NodeProcess.FreePort()];
        // Slowed on purpose (a step of ~10 ms): the run must outlast a few of Prometheus' 1 s scrapes.
        using var coordinator = new NodeProcess("node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "2",
            "--global-batch", "128", "--steps", "3000", "--eval-every", "0", "--train-eval-samples", "0",
            "--runs-dir", Path.Combine(_dir, "runs"), "--metrics-port", metricsPorts[0].ToString());
        var workers = metricsPorts[1..].Select(p => new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1",
            "--testing-slowdown", "10", "--metrics-port", p.ToString())).ToList();
        string[] targets = metricsPorts.Select(p => $"127.0.0.1:{p}").ToArray();
        File.WriteAllText(Path.Combine(_dir, "prometheus.yml"), $$"""
            global:
              scrape_interval: 1s
              scrape_timeout: 900ms
            scrape_configs:
              - job_name: batchcluster
                static_configs:
                  - targets: [{{string.Join(", ", targets.Select(t => $"'{t}'"))}}]
            """);
        using var prometheus = new NodeProcess(new ProcessStartInfo("prometheus")
        {
            ArgumentList =
            {
                $"--config.file={Path.Combine(_dir, "prometheus.yml")}", $"--storage.tsdb.path={Path.Combine(_dir, "tsdb")}",
                $"--web.listen-address=127.0.0.1:{prometheusPort}",
            },
            RedirectStandardOutput = true, RedirectStandardError = true,
        }, new Dictionary<string, string>());
        try
        {
            await coordinator.WaitForLineAsync(l => l.StartsWith("progress: step") && !l.Contains("(0%)"), Timeout);

            // Each node's page, as promtool reads it.
            foreach (string target in targets)
            {
                string page = await _http.GetStringAsync($"http://{target}/metrics");
                var (exit, problems) = Promtool(page);
                Assert.True(exit == 0, $"promtool check metrics on {target}: {problems}");
            }

            // Prometheus scrapes all three, and what it stores moves.
            string api = $"http://127.0.0.1:{prometheusPort}/api/v1/query?query=";
            await Eventually(async () => (await Values(api, "up == 1")).Count == 3, "all three nodes up in Prometheus");
            await Eventually(async () => (await Values(api, "batchcluster_steps_total")).Count == 1, "the step counter scraped");
            double firstSteps = (await Values(api, "batchcluster_steps_total"))[0].Value;
            await Eventually(async () => (await Values(api, "batchcluster_steps_total"))[0].Value > firstSteps, "the step counter moving");
            await Eventually(async () => (await Values(api, "changes(batchcluster_training_loss[1m]) > 0")).Count == 1, "the loss series moving");
            var shares = await Values(api, "batchcluster_worker_share_duration_seconds_count > 0");
            Assert.Equal(targets[1..].Order(), shares.Select(s => s.Instance).Order());
            Assert.Equal(2, (await Values(api, "batchcluster_workers_ready"))[0].Value);
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

    private static (int Exit, string Output) Promtool(string page)
    {
        using var process = Process.Start(new ProcessStartInfo("promtool", "check metrics")
            { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true })!;
        process.StandardInput.Write(page);
        process.StandardInput.Close();
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }

    /// <summary>The instant vector a PromQL query returns: each series' instance label and value.</summary>
    private async Task<List<(string Instance, double Value)>> Values(string api, string query)
    {
        using var document = JsonDocument.Parse(await _http.GetStringAsync(api + Uri.EscapeDataString(query)));
        Assert.Equal("success", document.RootElement.GetProperty("status").GetString());
        return document.RootElement.GetProperty("data").GetProperty("result").EnumerateArray()
            .Select(r => (r.GetProperty("metric").TryGetProperty("instance", out var i) ? i.GetString()! : "",
                double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture)))
            .ToList();
    }

    /// <summary>Polls <paramref name="condition"/> (Prometheus answers what it has scraped so far) until it holds or the timeout passes.</summary>
    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (HttpRequestException)
            {
                // Prometheus not listening yet
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"waited 60 s for {what}");
            await Task.Delay(250); // polling another process's state; nothing here synchronises on time
        }
    }
}

/// <summary>A test that needs Debian's Prometheus server and promtool: skipped where they are missing, unless BATCHCLUSTER_REQUIRE_HOSTS=1 (CI).</summary>
public sealed class PrometheusFactAttribute : FactAttribute
{
    public PrometheusFactAttribute()
    {
        if (!(File.Exists("/usr/bin/prometheus") && File.Exists("/usr/bin/promtool")) && !RootOnly.Required)
            Skip = "needs Prometheus (apt-get install prometheus; scripts/test.sh installs it)";
    }
}
