using System.Net.Sockets;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// The two ends of a connection that proves itself with a token handed out over Akka: a worker's
/// data connection to the coordinator, and a ring member's link to its downstream neighbour. The
/// connecting end opens TCP (and TLS, when the node runs with it), sends a Hello frame with the
/// token and waits for HelloAccepted; the accepting end takes at most a given number of
/// connections that have not yet shown a token, each for a bounded time (TLS handshake and Hello
/// together), and hands the rest to the owner, which decides whether the token is one it expects.
/// </summary>
internal static class TokenHandshake
{
    /// <summary>Connects, shows <paramref name="token"/> and waits for HelloAccepted, all within about <paramref name="timeout"/>.</summary>
    /// <param name="what">Names the connection in errors ("the data connection").</param>
    /// <param name="refused">The sentence when the other end closes instead of accepting the token.</param>
    /// <exception cref="IOException">The other end could not be reached, failed the TLS handshake or refused the token.</exception>
    public static Stream Connect(string host, int port, byte[] token, DataPlaneRun run, Security.ClusterTls? tls, TimeSpan timeout, string what, string refused)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var connecting = new CancellationTokenSource(timeout);
            socket.ConnectAsync(host, port, connecting.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            throw new IOException($"cannot open {what} to {host}:{port}: {e.Message}", e);
        }
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            stream.ReadTimeout = (int)timeout.TotalMilliseconds; // bounds the TLS handshake and the answer
            if (tls is not null) stream = tls.Connect(stream, host);
            stream.Write(FrameHeader.Hello(run.Precision, token));
            var reply = new byte[FrameHeader.Size];
            stream.ReadExactly(reply);
            FrameHeader.Read(reply, FrameKind.HelloAccepted, run.RunTag, run.ParameterCount, run.Precision);
            stream.ReadTimeout = Timeout.Infinite; // from now on a quiet connection is normal
            return stream;
        }
        catch (EndOfStreamException)
        {
            stream.Dispose();
            throw new IOException(refused);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or System.Security.Authentication.AuthenticationException)
        {
            stream.Dispose();
            throw new IOException($"cannot open {what} to {host}:{port}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Accepts connections until <paramref name="stopping"/> fires. Each may take <paramref name="helloTimeout"/> to show a
    /// Hello and its token (after the TLS handshake, when given); at most <paramref name="maxPending"/> may be that far at once
    /// (more are closed at once). A connection that shows one goes to <paramref name="onHello"/> with its token (the owner
    /// then owns the stream); any other is closed, and nothing of it is kept.
    /// </summary>
    public static async Task AcceptLoopAsync(TcpListener listener, DataPlaneRun run, Security.ClusterTls? tls, TimeSpan helloTimeout, int maxPending,
        Action<Stream, byte[]> onHello, CancellationToken stopping)
    {
        int pending = 0;
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // one failed accept (e.g. a reset) does not stop the listener
            }
            if (Interlocked.Increment(ref pending) > maxPending)
            {
                Interlocked.Decrement(ref pending);
                socket.Dispose();
                continue;
            }
            _ = ReadHelloAsync(socket);
        }

        async Task ReadHelloAsync(Socket socket)
        {
            socket.NoDelay = true;
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            byte[] token;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                timeout.CancelAfter(helloTimeout); // the TLS handshake and the Hello together
                if (tls is not null) stream = await tls.AcceptAsync(stream, timeout.Token).ConfigureAwait(false);
                var header = new byte[FrameHeader.Size];
                await stream.ReadExactlyAsync(header, timeout.Token).ConfigureAwait(false);
                var hello = FrameHeader.Read(header, FrameKind.Hello, run.RunTag, run.ParameterCount, run.Precision);
                token = new byte[FrameHeader.TokenBytes];
                await stream.ReadExactlyAsync(token, timeout.Token).ConfigureAwait(false);
                if (FramePayload.Checksum(token) != hello.Checksum) throw new InvalidDataException("a Hello frame fails its checksum");
            }
            catch (Exception)
            {
                // Not a peer of this run (or too slow to say so): nothing to report, nothing kept.
                await stream.DisposeAsync().ConfigureAwait(false);
                Interlocked.Decrement(ref pending);
                return;
            }
            Interlocked.Decrement(ref pending);
            onHello(stream, token);
        }
    }
}
