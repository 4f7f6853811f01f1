using System.Diagnostics;
using BatchCluster.Cli.Options;

namespace BatchCluster.Cli.Processes;

/// <summary>
/// Simulated hosts for a benchmark: a network namespace and address per host with links of a given
/// speed, made by the repository's scripts/sim-hosts.sh (the one home of that plumbing) and removed
/// on Dispose. Owned by this process: what a killed run leaves behind is removed by the next.
/// </summary>
public sealed class SimulatedNetwork : IDisposable
{
    public sealed record Host(int Index, string Address, string Namespace);

    public IReadOnlyList<Host> Hosts { get; }

    private SimulatedNetwork(IReadOnlyList<Host> hosts) => Hosts = hosts;

    /// <param name="rate">A tc rate for every link ("1gbit"), or null for unshaped links.</param>
    public static SimulatedNetwork Up(int hosts, string? rate)
    {
        var args = new List<string> { "up", "--owner", Environment.ProcessId.ToString(), "--hosts", hosts.ToString() };
        if (rate is not null) args.AddRange(["--rate", rate]);
        var made = Script(args).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' '))
            .Select(f => new Host(int.Parse(f[0]), f[1], f[2]))
            .ToList();
        return new SimulatedNetwork(made);
    }

    public void Dispose() => Script(["down", "--owner", Environment.ProcessId.ToString()]);

    /// <summary>scripts/sim-hosts.sh of the checkout this tool was built from (artifacts/cli/ lies inside it).</summary>
    public static string ScriptPath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "scripts", "sim-hosts.sh");
            if (File.Exists(candidate)) return candidate;
        }
        throw new CommandFailedException("scripts/sim-hosts.sh was not found above this tool; run it from a checkout (scripts/batchcluster …)");
    }

    private static string Script(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(ScriptPath()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new CommandFailedException("could not start scripts/sim-hosts.sh");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        // The script's own sentence (no root, no iproute2, a bad rate) is the user's message.
        if (process.ExitCode != 0) throw new CommandFailedException(stderr.Result.Trim());
        return stdout.Result;
    }
}
