using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>A long-running CLI process (a cluster node) whose output lines are collected as they come.</summary>
public sealed class NodeProcess : IDisposable
{
    private readonly Process _process;
    public ConcurrentQueue<string> StdOut { get; } = new();
    public ConcurrentQueue<string> StdErr { get; } = new();

    public NodeProcess(params string[] args) : this(new Dictionary<string, string>(), args) { }

    /// <param name="environment">Variables set for the process on top of this one's (e.g. BATCHCLUSTER_TLS_PASSWORD).</param>
    public NodeProcess(IReadOnlyDictionary<string, string> environment, params string[] args) : this(CliProcess.StartInfo(args), environment) { }

    /// <param name="start">How to start it (output redirected), e.g. the CLI inside a simulated host.</param>
    public NodeProcess(ProcessStartInfo start, IReadOnlyDictionary<string, string> environment)
    {
        _process = new Process { StartInfo = start };
        foreach (var (name, value) in environment) _process.StartInfo.Environment[name] = value;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) StdOut.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) StdErr.Enqueue(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The CLI run inside a network namespace (a simulated host): <c>ip netns exec</c> execs it, so the process id stays the node's.</summary>
    public static NodeProcess On(string networkNamespace, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = CliProcess.StartInfo(args);
        foreach (string prefix in new[] { "netns", "exec", networkNamespace, start.FileName }.Reverse()) start.ArgumentList.Insert(0, prefix);
        start.FileName = "ip";
        return new NodeProcess(start, environment);
    }

    public int Id => _process.Id;

    /// <summary>SIGKILL on Linux: no goodbye to the cluster, like a crashed machine.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    public const int SigInt = 2, SigTerm = 15, SigCont = 18, SigStop = 19;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>Sends a signal (SIGTERM as docker stop does; SIGSTOP/SIGCONT to freeze and thaw a node like a long pause).</summary>
    /// <exception cref="InvalidOperationException">The node is gone: says how it ended and what it wrote last, so that a node that
    /// exited on its own (downed, crashed) shows why.</exception>
    public void Signal(int signal)
    {
        if (kill(_process.Id, signal) == 0) return;
        int errno = Marshal.GetLastWin32Error();
        _process.WaitForExit(5000);
        string ended = _process.HasExited ? $"it had exited with code {_process.ExitCode}" : "it is still running";
        throw new InvalidOperationException(
            $"kill({_process.Id}, {signal}) failed: errno {errno}; {ended}. Its last output:\n{string.Join('\n', StdOut.TakeLast(30))}\n{string.Join('\n', StdErr.TakeLast(30))}");
    }

    /// <summary>Sends a signal to any process (e.g. SIGINT to a script, as Ctrl-C in its terminal would).</summary>
    public static void Signal(int pid, int signal)
    {
        if (kill(pid, signal) != 0) throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastWin32Error()}");
    }

    /// <summary>SIGTERM, then the seconds until the process has exited and its exit code.</summary>
    public async Task<(double Seconds, int ExitCode)> StopAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        Signal(SigTerm);
        int exit = await WaitForExitAsync(timeout);
        return (clock.Elapsed.TotalSeconds, exit);
    }

    /// <summary>The lines written so far that <paramref name="match"/> accepts.</summary>
    public IEnumerable<string> Lines(Func<string, bool> match) => StdOut.Where(match);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        _process.WaitForExit(); // drains the asynchronous output readers
        return _process.ExitCode;
    }

    public Task WaitForLineAsync(Func<string, bool> match, TimeSpan timeout) => WaitForLinesAsync(match, 1, timeout);

    /// <summary>Waits until <paramref name="count"/> output lines match (polling the collected output).</summary>
    public async Task WaitForLinesAsync(Func<string, bool> match, int count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (StdOut.Count(match) < count)
        {
            if (_process.HasExited) throw new InvalidOperationException($"process exited with {_process.ExitCode} first: {string.Join('\n', StdErr)}");
            if (clock.Elapsed > timeout) throw new TimeoutException("the expected line never came");
            await Task.Delay(50); // polling a child's output; nothing here synchronises on time
        }
    }

    /// <summary>
    /// A port free now, chosen below Linux's ephemeral range (32768–60999): between this call and
    /// the node's bind, another process asking for "any port" (as the in-process cluster tests
    /// running beside us do) cannot be handed the same one.
    /// </summary>
    public static int FreePort()
    {
        for (int attempt = 0; attempt < 200; attempt++)
        {
            int port = Random.Shared.Next(20_000, 32_000);
            try
            {
                var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                listener.Stop();
                return port;
            }
            catch (SocketException)
            {
                // taken: try another
            }
        }
        throw new InvalidOperationException("no free port found between 20000 and 32000");
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
