using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// Where a ring member's upstream neighbour connects. Each connection must show, within
/// <see cref="HelloTimeout"/> (TLS handshake included, when the node runs with TLS), a Hello whose
/// token the coordinator handed to that neighbour; the member then claims it with the token it was
/// told to expect (<see cref="Claim"/>), and only then is HelloAccepted sent. A neighbour may
/// connect before this member has heard of the ring (the two learn of it by separate messages), so
/// an authenticated-looking connection waits here, unanswered, for at most <see cref="HelloTimeout"/>;
/// at most <see cref="MaxWaiting"/> wait at once, and a connection nobody claims is closed.
/// Nothing is read beyond the Hello before the member claims the connection, and a token nobody
/// expects is never accepted. Thread-safe.
/// </summary>
public sealed class RingListener : IDisposable
{
    public static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);
    public const int MaxWaiting = 8;

    private readonly TcpListener _listener;
    private readonly DataPlaneRun _run;
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _gate = new();
    /// <summary>Connections that showed a token and wait to be claimed, oldest first.</summary>
    private readonly List<(byte[] Token, Stream Stream, DateTime Since)> _waiting = [];

    public RingListener(string host, DataPlaneRun run, Security.ClusterTls? tls)
    {
        _run = run;
        var address = IPAddress.TryParse(host, out var parsed) ? parsed : Dns.GetHostAddresses(host).First(a => a.AddressFamily == AddressFamily.InterNetwork);
        _listener = new TcpListener(address, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = TokenHandshake.AcceptLoopAsync(_listener, run, tls, HelloTimeout, MaxWaiting, Park, _stopping.Token);
    }

    public int Port { get; }

    /// <summary>
    /// Waits for the connection that shows <paramref name="token"/>, answers it with HelloAccepted
    /// and hands it over (the caller owns the stream).
    /// </summary>
    /// <exception cref="IOException">No such connection within <paramref name="timeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> fired first.</exception>
    public Stream Claim(byte[] token, TimeSpan timeout, CancellationToken cancellation)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_gate)
        {
            while (true)
            {
                cancellation.ThrowIfCancellationRequested();
                int index = _waiting.FindIndex(w => CryptographicOperations.FixedTimeEquals(w.Token, token));
                if (index >= 0)
                {
                    var stream = _waiting[index].Stream;
                    _waiting.RemoveAt(index);
                    try
                    {
                        stream.Write(FrameHeader.HelloAccepted(_run));
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException)
                    {
                        stream.Dispose();
                        throw new IOException($"the upstream neighbour's connection broke before it was accepted: {e.Message}", e);
                    }
                    return stream;
                }
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new IOException($"the upstream neighbour did not connect within {timeout.TotalSeconds:F0} s");
                // Woken by every new connection; a short bound keeps cancellation prompt.
                Monitor.Wait(_gate, left < TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100));
            }
        }
    }

    /// <summary>A connection showed a token: it waits here until the member claims it, or expires.</summary>
    private void Park(Stream stream, byte[] token)
    {
        lock (_gate)
        {
            DropExpired();
            if (_waiting.Count >= MaxWaiting)
            {
                stream.Dispose();
                return;
            }
            _waiting.Add((token, stream, DateTime.UtcNow));
            Monitor.PulseAll(_gate);
        }
    }

    private void DropExpired()
    {
        var now = DateTime.UtcNow;
        for (int i = _waiting.Count - 1; i >= 0; i--)
            if (now - _waiting[i].Since > HelloTimeout)
            {
                _waiting[i].Stream.Dispose();
                _waiting.RemoveAt(i);
            }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Stop();
        lock (_gate)
        {
            foreach (var (_, stream, _) in _waiting) stream.Dispose();
            _waiting.Clear();
            Monitor.PulseAll(_gate);
        }
    }
}
