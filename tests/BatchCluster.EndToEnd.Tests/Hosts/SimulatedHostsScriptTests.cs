using System.Diagnostics;
using BatchCluster.Cli.Processes;

namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary>scripts/sim-hosts.sh itself: what it leaves behind and what it says without root.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SimulatedHostsScriptTests
{
    /// <summary>
    /// A run that died (its owner process gone) left its namespaces behind: the next `up` removes them,
    /// and `down` removes every namespace it made.
    /// </summary>
    [SimulatedHostsFact]
    public void Namespaces_of_a_dead_owner_are_removed_by_the_next_up_and_down_removes_its_own()
    {
        using var gone = Process.Start(new ProcessStartInfo("true"))!;
        gone.WaitForExit();
        var leftBehind = Script("up", "--owner", gone.Id.ToString(), "--hosts", "2");
        Assert.Equal(0, leftBehind.ExitCode);
        Assert.Contains($"bch-{gone.Id}-h1", NetworkNamespaces.List());

        using (var hosts = SimulatedNetwork.Up(2, rate: "1gbit"))
        {
            Assert.DoesNotContain(NetworkNamespaces.List(), ns => ns.StartsWith($"bch-{gone.Id}-", StringComparison.Ordinal));
            Assert.Equal(["198.18.0.1", "198.18.0.2"], hosts.Hosts.Select(h => h.Address));
            Assert.Contains($"bch-{Environment.ProcessId}-br", NetworkNamespaces.List());
        }
        Assert.DoesNotContain(NetworkNamespaces.List(), ns => ns.StartsWith($"bch-{Environment.ProcessId}-", StringComparison.Ordinal));
    }

    [SimulatedHostsFact]
    public void Without_root_it_says_so_in_one_sentence()
    {
        // setpriv runs the script as nobody: what a user without root sees. A copy in a folder that
        // nobody may enter (the checkout may lie under /root), run from there.
        var folder = Directory.CreateTempSubdirectory("sim-hosts-");
        try
        {
            string copy = Path.Combine(folder.FullName, "sim-hosts.sh");
            File.Copy(ScriptPath, copy);
            File.SetUnixFileMode(folder.FullName, (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(copy, (UnixFileMode)0b111_101_101);
            var outcome = ScriptProcess.Run(folder.FullName, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", copy, "up", "--owner", "1", "--hosts", "2");
            Assert.Equal(2, outcome.ExitCode);
            Assert.Equal("sim-hosts: simulated hosts need root (network namespaces and tc); run as root, or use scripts/run-cluster.sh for nodes on loopback",
                outcome.StdErr.Trim());
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [SimulatedHostsFact]
    public void A_rate_tc_does_not_understand_is_refused_before_anything_is_made()
    {
        var outcome = Script("up", "--owner", Environment.ProcessId.ToString(), "--hosts", "2", "--rate", "fast");
        Assert.Equal(2, outcome.ExitCode);
        Assert.Equal("sim-hosts: 'fast' is not a rate tc understands; use e.g. 10gbit, 1gbit, 100mbit", outcome.StdErr.Trim());
        Assert.DoesNotContain(NetworkNamespaces.List(), ns => ns.StartsWith($"bch-{Environment.ProcessId}-", StringComparison.Ordinal));
    }

    private static string ScriptPath => ScriptProcess.PathOf("sim-hosts.sh");

    private static CliProcess.Outcome Script(params string[] args) => ScriptProcess.Run(null, ScriptPath, args);
}
