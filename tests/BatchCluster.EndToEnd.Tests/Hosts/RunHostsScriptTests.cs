using System.Diagnostics;

namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary>scripts/run-hosts.sh as a user runs it: the summary line last, nothing left behind on Ctrl-C.</summary>
public sealed class RunHostsScriptTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("run-hosts-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// Ctrl-C (SIGINT) while the nodes train: the script stops every node, waits for them, removes
    /// every namespace it made, and exits 130 as an interrupted shell command does.
    /// </summary>
    [SimulatedHostsFact]
    public async Task Ctrl_c_mid_run_stops_every_node_and_leaves_no_namespace()
    {
        // env restores SIGINT's default first: a shell cannot trap a signal that was ignored when it
        // started, and a test runner launched in the background (nohup …&) passes SIGINT on ignored.
        var start = new ProcessStartInfo("env")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add("--default-signal=INT");
        start.ArgumentList.Add(Path.Combine(CliProcess.RepositoryRoot(), "scripts", "run-hosts.sh"));
        // The nodes run the CLI built beside the tests: the script would otherwise build its own copy first.
        start.Environment["BATCHCLUSTER_DLL"] = Path.Combine(AppContext.BaseDirectory, "batchcluster.dll");
        foreach (string a in new[] { "--workers", "2", "--rate", "100mbit", "--dataset", "synthetic", "--steps", "100000", "--eval-every", "0",
                     "--runs-dir", Path.Combine(_dir, "runs") })
            start.ArgumentList.Add(a);
        using var script = Process.Start(start)!;
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        script.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        script.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        script.BeginOutputReadLine();
        script.BeginErrorReadLine();
        try
        {
            var clock = Stopwatch.StartNew();
            while (!lines.Any(l => l.Contains("2 workers ready", StringComparison.Ordinal)))
            {
                Assert.False(script.HasExited, string.Join('\n', lines));
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(3), "the cluster never became ready: " + string.Join('\n', lines));
                await Task.Delay(100); // polling the script's output
            }
            Assert.Contains($"bch-{script.Id}-h0", NetworkNamespaces.List());
            NodeProcess.Signal(script.Id, NodeProcess.SigInt);
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await script.WaitForExitAsync(limit.Token);
            Assert.Equal(130, script.ExitCode);
            // The script waits for its nodes before it exits: exiting at all means they stopped.
            Assert.DoesNotContain(NetworkNamespaces.List(), ns => ns.StartsWith($"bch-{script.Id}-", StringComparison.Ordinal));
        }
        finally
        {
            if (!script.HasExited) script.Kill(entireProcessTree: true);
        }
    }
}
