namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary>
/// A test that needs simulated hosts (scripts/sim-hosts.sh: network namespaces, so root and
/// iproute2): skipped where they cannot be made, unless BATCHCLUSTER_REQUIRE_HOSTS=1 (CI sets it),
/// where it runs and fails loudly instead.
/// </summary>
public sealed class SimulatedHostsFactAttribute : FactAttribute
{
    public SimulatedHostsFactAttribute()
    {
        if (!Available && !RootOnly.Required)
            Skip = "simulated hosts need root and iproute2 (network namespaces); run the tests as root to include this one";
    }

    private static bool Available =>
        RootOnly.IsRoot && new[] { "/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip" }.Any(File.Exists);
}

/// <summary>The network namespaces on this machine (names only), as `ip netns list` shows them.</summary>
public static class NetworkNamespaces
{
    public static string[] List()
    {
        using var ip = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip", "netns list") { RedirectStandardOutput = true })!;
        string output = ip.StandardOutput.ReadToEnd();
        ip.WaitForExit();
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToArray();
    }
}
