using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace BatchCluster.Cli.Processes;

/// <summary>
/// Another run of this tool as a child process (a cluster node, a reference run), its output lines
/// collected as they come, and signals sent to it the way an operator or a crash would.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    public const int SigKill = 9, SigTerm = 15, SigStop = 19;

    private readonly Process _process;

    public ConcurrentQueue<string> Output { get; } = new();

    /// <param name="args">The tool's arguments (this assembly is started with dotnet).</param>
    /// <param name="networkNamespace">Run it inside this network namespace (a simulated host, <see cref="SimulatedNetwork"/>);
    /// <c>ip netns exec</c> execs the tool, so the process id stays the node's.</param>
    public ChildProcess(IEnumerable<string> args, string? networkNamespace = null)
        : this("dotnet", args.Prepend(typeof(ChildProcess).Assembly.Location), networkNamespace, environment: null)
    {
    }

    /// <summary>Another program (a reference implementation to measure against), started the same way.</summary>
    public static ChildProcess Program(string program, IEnumerable<string> args, string? networkNamespace, IReadOnlyDictionary<string, string>? environment = null) =>
        new(program, args, networkNamespace, environment);

    private ChildProcess(string program, IEnumerable<string> args, string? networkNamespace, IReadOnlyDictionary<string, string>? environment)
    {
        var info = new ProcessStartInfo(networkNamespace is null ? program : "ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (networkNamespace is not null) foreach (string a in new[] { "netns", "exec", networkNamespace, program }) info.ArgumentList.Add(a);
        foreach (string arg in args) info.ArgumentList.Add(arg);
        // An empty value removes the variable.
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            if (value.Length == 0) info.Environment.Remove(name);
            else info.Environment[name] = value;
        _process = Process.Start(info) ?? throw new Options.CommandFailedException($"could not start {program}");
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) Output.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Output.Enqueue(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>Resident memory now (VmRSS from /proc), or null once the process is gone.</summary>
    public long? ResidentBytes()
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{_process.Id}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            // exited meanwhile
        }
        return null;
    }
    public int ExitCode => _process.ExitCode;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>Sends a signal to any process (this one included: the ring's fault injection for tests).</summary>
    public static void SignalProcess(int pid, int signal)
    {
        if (Kill(pid, signal) != 0) throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public void Signal(int signal)
    {
        if (!_process.HasExited && Kill(_process.Id, signal) != 0 && !_process.HasExited)
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellation = default)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        limit.CancelAfter(timeout);
        await _process.WaitForExitAsync(limit.Token);
        _process.WaitForExit(); // drains the output readers
        return _process.ExitCode;
    }

    /// <summary>Waits until a line of output matches (polling what was collected; the child decides when it writes).</summary>
    public async Task WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        while (!Output.Any(match))
        {
            if (_process.HasExited) throw new Options.CommandFailedException($"a child process exited with {_process.ExitCode} before it was ready: {string.Join(" | ", Output.TakeLast(5))}");
            if (clock.Elapsed > timeout) throw new TimeoutException("a child process never wrote the expected line");
            await Task.Delay(50, cancellation);
        }
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
