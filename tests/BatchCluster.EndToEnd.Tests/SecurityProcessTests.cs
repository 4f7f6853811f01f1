using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// A closed cluster of real processes: certificates made by 'batchcluster certs' (no openssl), a
/// coordinator and a worker of that authority train over TLS on both channels, and a worker with
/// another authority's certificate (made by scripts/make-test-certs.sh with openssl) cannot get in.
/// </summary>
public sealed class SecurityProcessTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private const string Password = "e2e-test-password";
    private readonly string _dir = Directory.CreateTempSubdirectory("security-e2e-").FullName;
    private readonly Dictionary<string, string> _env = new() { ["BATCHCLUSTER_TLS_PASSWORD"] = Password };

    public void Dispose() => Directory.Delete(_dir, recursive: true);


    /// <summary>Our authority and nodes, made by 'batchcluster certs' (.NET's CertificateRequest, no openssl).</summary>
    private string MakeCertificatesWithCertsCommand(string name, params string[] nodes)
    {
        string dir = Path.Combine(_dir, name);
        var init = CliProcess.Run(TimeSpan.FromMinutes(3), _env, "certs", "init", dir);
        Assert.True(init.ExitCode == 0, init.StdErr);
        var add = CliProcess.Run(TimeSpan.FromMinutes(3), _env, ["certs", "add", dir, .. nodes]);
        Assert.True(add.ExitCode == 0, add.StdErr);
        var again = CliProcess.Run(TimeSpan.FromMinutes(3), _env, "certs", "init", dir); // never replaces an authority
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("already holds an authority", again.StdErr);
        return dir;
    }

    /// <summary>Another authority, made by scripts/make-test-certs.sh (openssl).</summary>
    private string MakeCertificates(string name, params string[] nodes)
    {
        string dir = Path.Combine(_dir, name);
        var start = new ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(Path.Combine(CliProcess.RepositoryRoot(), "scripts", "make-test-certs.sh"));
        start.ArgumentList.Add(dir);
        foreach (var n in nodes) start.ArgumentList.Add(n);
        start.Environment["BATCHCLUSTER_TLS_PASSWORD"] = Password;
        using var process = Process.Start(start)!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, error);
        return dir;
    }

    [Fact]
    public async Task A_tls_cluster_trains_and_a_node_of_another_authority_stays_out()
    {
        string ours = MakeCertificatesWithCertsCommand("ours", "coordinator", "worker-1");
        string theirs = MakeCertificates("theirs", "worker-x");
        int port = NodeProcess.FreePort();
        using var coordinator = new NodeProcess(_env, "node", "--role", "coordinator", "--port", port.ToString(),
            "--tls-cert", Path.Combine(ours, "coordinator.pfx"), "--tls-ca", Path.Combine(ours, "ca.crt"),
            "--dataset", "synthetic", "--steps", "40", "--global-batch", "64", "--eval-every", "0",
            "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", "tls");
        await coordinator.WaitForLineAsync(l => l.Contains("waiting for 1 workers"), Timeout);

        using (var stranger = new NodeProcess(_env, "node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--join-timeout", "5",
                   "--tls-cert", Path.Combine(theirs, "worker-x.pfx"), "--tls-ca", Path.Combine(theirs, "ca.crt")))
        {
            Assert.Equal(3, await stranger.WaitForExitAsync(Timeout));
            Assert.Contains(stranger.StdErr, l => l.Contains("with TLS and certificates of the same authority"));
        }

        using var worker = new NodeProcess(_env, "node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1",
            "--tls-cert", Path.Combine(ours, "worker-1.pfx"), "--tls-ca", Path.Combine(ours, "ca.crt"));
        int exit = await coordinator.WaitForExitAsync(Timeout);
        Assert.True(exit == 0, string.Join('\n', coordinator.StdErr.Concat(coordinator.StdOut)));
        using var summary = JsonDocument.Parse(coordinator.StdOut.Last());
        Assert.Equal(40, summary.RootElement.GetProperty("steps").GetInt64());
        Assert.Equal(1, summary.RootElement.GetProperty("workers").GetInt32());
        var joined = File.ReadAllLines(Path.Combine(_dir, "runs", "tls", "events.clef")).Single(l => l.Contains("\"EventType\":\"WorkerJoined\""));
        Assert.Contains("akka.ssl.tcp://", joined);
        Assert.Contains("data plane", joined);
        Assert.Equal(0, await worker.WaitForExitAsync(Timeout));
    }

    [Fact]
    public void A_taken_port_is_refused_before_the_run_directory_exists()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            string runs = Path.Combine(_dir, "runs");
            var outcome = CliProcess.Run("node", "--role", "coordinator", "--port", port.ToString(), "--dataset", "synthetic", "--steps", "1",
                "--runs-dir", runs, "--run-id", "taken");
            BadInputTests.AssertRefused(outcome, $"cannot listen on 127.0.0.1:{port}");
            Assert.False(Directory.Exists(Path.Combine(runs, "taken"))); // the run id is not burned
        }
        finally
        {
            listener.Stop();
        }
    }

    [Theory]
    [InlineData("--tls-cert and --tls-ca go together", "--tls-cert", "node.pfx")]
    [InlineData("--tls-cert: no file at", "--tls-cert", "/nonexistent/node.pfx", "--tls-ca", "/nonexistent/ca.crt")]
    [InlineData("--host '127.0.0.1\" x' is not a host name or IP address", "--host", "127.0.0.1\" x")]
    [InlineData("--seed-nodes: 'a b' is not a host name", "--seed-nodes", "a b:4053")]
    [InlineData("a worker's nodes to join are --seed-nodes HOST:PORT; --seed is the training seed", "--seed", "127.0.0.1:4053")]
    public void Bad_network_flags_are_refused_clearly(string expected, params string[] flags)
    {
        string[] seed = flags.Contains("--seed-nodes") || flags.Contains("--seed") ? [] : ["--seed-nodes", "127.0.0.1:4053"];
        BadInputTests.AssertRefused(CliProcess.Run(["node", "--role", "worker", .. seed, .. flags]), expected);
    }

    [Fact]
    public void A_port_variable_that_is_no_number_is_refused()
    {
        var outcome = CliProcess.Run(TimeSpan.FromMinutes(1), new Dictionary<string, string> { ["BATCHCLUSTER_PORT"] = "abc" },
            "node", "--role", "worker", "--seed-nodes", "127.0.0.1:4053");
        BadInputTests.AssertRefused(outcome, "BATCHCLUSTER_PORT must be a whole number from 0 to 65535, not 'abc'");
    }

    /// <summary>Secure by default: beyond loopback a node refuses to start without TLS, unless told --insecure (and then says what that allows).</summary>
    [Fact]
    public void Listening_beyond_loopback_without_tls_is_refused_unless_insecure_is_given()
    {
        int port = NodeProcess.FreePort();
        var refused = CliProcess.Run("node", "--role", "worker", "--host", "0.0.0.0", "--seed-nodes", $"127.0.0.1:{port}", "--join-timeout", "1");
        BadInputTests.AssertRefused(refused, "--host 0.0.0.0 listens beyond loopback without TLS");
        Assert.Contains("--tls-cert and --tls-ca", refused.StdErr);
        Assert.Contains("--insecure", refused.StdErr);

        var insecure = CliProcess.Run("node", "--role", "worker", "--host", "0.0.0.0", "--insecure", "--seed-nodes", $"127.0.0.1:{port}", "--join-timeout", "1");
        Assert.Equal(3, insecure.ExitCode); // it started; nobody at the seed
        Assert.Contains("warning: --insecure: listening on 0.0.0.0 without TLS", insecure.StdErr);
        Assert.Contains("down its nodes", insecure.StdErr);
    }
}
