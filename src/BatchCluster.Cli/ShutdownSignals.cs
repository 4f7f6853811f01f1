using System.Runtime.InteropServices;

namespace BatchCluster.Cli;

/// <summary>
/// SIGTERM (docker stop, systemd, Kubernetes) and SIGINT (Ctrl-C) end every command cleanly: the
/// first one cancels <see cref="Token"/>, and the command finishes on its own terms (a run writes a
/// checkpoint when checkpoints are on, logs RunInterrupted and flushes its log; a worker node tells
/// its coordinator and leaves the cluster). A second signal gets the runtime's default: immediate exit.
/// </summary>
public sealed class ShutdownSignals : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly PosixSignalRegistration[] _registrations;
    private int _received;

    public ShutdownSignals()
    {
        _registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle),
        ];
    }

    public CancellationToken Token => _stop.Token;

    /// <summary>The signal that asked to stop ("SIGTERM" or "SIGINT"), or null.</summary>
    public string? Received { get; private set; }

    /// <summary>The conventional exit code of a process stopped by that signal: 128 + its number.</summary>
    public int ExitCode => Received == "SIGTERM" ? 143 : 130;

    private void Handle(PosixSignalContext context)
    {
        if (Interlocked.Exchange(ref _received, 1) == 1) return; // the second signal: default handling, exit now
        context.Cancel = true;
        Received = context.Signal == PosixSignal.SIGTERM ? "SIGTERM" : "SIGINT";
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The command had already ended: nothing left to stop.
        }
    }

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _stop.Dispose();
    }
}
