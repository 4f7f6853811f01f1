using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>A long-running CLI process (a cluster node) whose output lines are collected as they come.</summary>
public sealed class NodeProcess : IDisposable
{
    private readonly Process _process;
    public ConcurrentQueue<string> StdOut { get; } = new();
    public ConcurrentQueue<string> StdErr { get; } = new();

    public NodeProcess(params string[] args)
    {
        _process = new Process { StartInfo = CliProcess.StartInfo(args) };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) StdOut.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) StdErr.Enqueue(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Id => _process.Id;

    /// <summary>SIGKILL on Linux: no goodbye to the cluster, like a crashed machine.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        _process.WaitForExit(); // drains the asynchronous output readers
        return _process.ExitCode;
    }

    public async Task WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!StdOut.Any(match))
        {
            if (_process.HasExited) throw new InvalidOperationException($"process exited with {_process.ExitCode} first: {string.Join('\n', StdErr)}");
            if (clock.Elapsed > timeout) throw new TimeoutException("the expected line never came");
            await Task.Delay(50); // polling a child's output; nothing here synchronises on time
        }
    }

    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
