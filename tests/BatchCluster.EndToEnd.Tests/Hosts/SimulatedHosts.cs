using System.Diagnostics;
using System.Runtime.InteropServices;

namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary>
/// Hosts with addresses of their own on this machine, made by scripts/sim-hosts.sh (a network
/// namespace per host, joined by a bridge, links optionally shaped) and removed on Dispose. Owned by
/// this test process: namespaces left behind by a test process that died are removed by the next `up`.
/// </summary>
public sealed class SimulatedHosts : IDisposable
{
    public sealed record Host(int Index, string Address, string Namespace);

    public IReadOnlyList<Host> Hosts { get; }

    private SimulatedHosts(IReadOnlyList<Host> hosts) => Hosts = hosts;

    public Host this[int index] => Hosts[index];

    /// <param name="rate">A tc rate for every link (e.g. "1gbit"), or null for unshaped links.</param>
    public static SimulatedHosts Up(int count, string? rate = null)
    {
        var args = new List<string> { "up", "--owner", Environment.ProcessId.ToString(), "--hosts", count.ToString() };
        if (rate is not null) args.AddRange(["--rate", rate]);
        string output = Script(args);
        var hosts = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' '))
            .Select(f => new Host(int.Parse(f[0]), f[1], f[2]))
            .ToList();
        if (hosts.Count != count) throw new InvalidOperationException($"sim-hosts.sh made {hosts.Count} hosts, not {count}: {output}");
        return new SimulatedHosts(hosts);
    }

    /// <summary>How to run the CLI built beside the tests inside <paramref name="host"/>'s namespace.</summary>
    public static ProcessStartInfo CliIn(Host host, IEnumerable<string> args)
    {
        var start = CliProcess.StartInfo(args);
        start.ArgumentList.Insert(0, start.FileName);
        foreach (string prefix in new[] { "netns", "exec", host.Namespace }.Reverse()) start.ArgumentList.Insert(0, prefix);
        start.FileName = "ip"; // ip netns exec execs the command: the process id stays the node's
        return start;
    }

    public void Dispose() => Script(["down", "--owner", Environment.ProcessId.ToString()]);

    /// <summary>Whether this machine can make simulated hosts: root, and iproute2 installed.</summary>
    public static bool Available =>
        geteuid() == 0 && new[] { "/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip" }.Any(File.Exists);

    [DllImport("libc")]
    private static extern uint geteuid();

    private static string Script(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(Path.Combine(CliProcess.RepositoryRoot(), "scripts", "sim-hosts.sh"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(1))) process.Kill();
        if (process.ExitCode != 0) throw new InvalidOperationException($"sim-hosts.sh {string.Join(' ', args)} failed: {stderr.Result}");
        return stdout.Result;
    }
}

/// <summary>
/// A test that needs simulated hosts: skipped where they cannot be made (not root), unless
/// BATCHCLUSTER_REQUIRE_HOSTS=1 (CI sets it), where it runs and fails loudly instead.
/// </summary>
public sealed class SimulatedHostsFactAttribute : FactAttribute
{
    public SimulatedHostsFactAttribute()
    {
        if (!SimulatedHosts.Available && Environment.GetEnvironmentVariable("BATCHCLUSTER_REQUIRE_HOSTS") != "1")
            Skip = "simulated hosts need root and iproute2 (network namespaces); run the tests as root to include this one";
    }
}
