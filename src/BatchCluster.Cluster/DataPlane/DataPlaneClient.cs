using System.Net.Sockets;

namespace BatchCluster.Cluster.DataPlane;

/// <summary>Where and how a worker reaches the coordinator's data plane (handed out in WorkerAccepted).</summary>
public sealed record DataPlaneOffer(string Host, int Port, byte[] Token, Core.Training.TransferPrecision Precision);

/// <summary>Parameters that arrived on the data connection; the receiver owns <see cref="Values"/> (a pooled buffer).</summary>
public sealed record ParametersArrived(long ConnectionId, long Version, float[] Values);

/// <summary>
/// A worker's end of the data plane: connects, proves itself with the token from WorkerAccepted,
/// waits for HelloAccepted, then reads parameter frames on a background loop (each one checked:
/// kind, run, precision, exactly the model's size, checksum) and writes gradient sums from the
/// worker's own thread. A broken connection is reported once through <c>onLost</c>.
/// </summary>
public sealed class DataPlaneClient : IDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private static long _nextId;

    private readonly Socket _socket;
    private readonly TensorStream _tensors;
    private readonly Action<ParametersArrived> _onParameters;
    private readonly Action<string> _onLost;
    private int _closed;

    public long Id { get; } = Interlocked.Increment(ref _nextId);
    public DataPlaneOffer Offer { get; }

    private DataPlaneClient(Socket socket, DataPlaneOffer offer, DataPlaneRun run, Action<ParametersArrived> onParameters, Action<string> onLost)
    {
        _socket = socket;
        Offer = offer;
        _tensors = new TensorStream(new NetworkStream(socket, ownsSocket: true), run);
        _onParameters = onParameters;
        _onLost = onLost;
    }

    /// <summary>Connects and authenticates (blocking, at most about 10 s), then starts reading parameters.</summary>
    /// <exception cref="IOException">The coordinator's data plane could not be reached or refused the token.</exception>
    public static DataPlaneClient Connect(DataPlaneOffer offer, DataPlaneRun run, Action<ParametersArrived> onParameters, Action<string> onLost)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using (var timeout = new CancellationTokenSource(ConnectTimeout))
                socket.ConnectAsync(offer.Host, offer.Port, timeout.Token).AsTask().GetAwaiter().GetResult();
            socket.ReceiveTimeout = (int)ConnectTimeout.TotalMilliseconds;
            var hello = new byte[FrameHeader.Size + FrameHeader.TokenBytes];
            new FrameHeader(FrameKind.Hello, run.Precision, run.RunTag, 0, 0, -1, 0, FramePayload.Checksum(offer.Token)).Write(hello);
            offer.Token.CopyTo(hello, FrameHeader.Size);
            socket.Send(hello);
            var reply = new byte[FrameHeader.Size];
            int read = 0;
            while (read < reply.Length)
            {
                int n = socket.Receive(reply, read, reply.Length - read, SocketFlags.None);
                if (n == 0) throw new IOException("the coordinator closed the data connection: it did not accept this worker's token");
                read += n;
            }
            FrameHeader.Read(reply, FrameKind.HelloAccepted, run.RunTag, 0, run.Precision);
            socket.ReceiveTimeout = 0; // from now on a quiet connection is normal (the coordinator may evaluate, or pause)
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or InvalidDataException)
        {
            socket.Dispose();
            throw new IOException($"cannot open the data connection to {offer.Host}:{offer.Port}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var client = new DataPlaneClient(socket, offer, run, onParameters, onLost);
        new Thread(client.ReadLoop) { IsBackground = true, Name = "data-plane reader" }.Start();
        return client;
    }

    /// <summary>Sends one gradient sum (blocking until the bytes are with the kernel); the caller may reuse <paramref name="values"/> after.</summary>
    /// <exception cref="IOException">The connection is broken (it is then closed and reported).</exception>
    public void SendGradient(long step, long version, int slot, ReadOnlySpan<float> values)
    {
        try
        {
            _tensors.Write(new FrameHeader(FrameKind.GradientSum, Offer.Precision, RunTag: 0, step, version, slot, values.Length, Checksum: 0), values);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            Close($"sending failed: {e.Message}");
            throw new IOException($"the data connection broke while sending a gradient: {e.Message}", e);
        }
    }

    private void ReadLoop()
    {
        try
        {
            while (true)
            {
                var (header, values) = _tensors.Read(FrameKind.Parameters);
                _onParameters(new ParametersArrived(Id, header.Version, values));
            }
        }
        catch (EndOfStreamException)
        {
            Close("the coordinator closed the data connection");
        }
        catch (Exception e)
        {
            Close(e.Message);
        }
    }

    private void Close(string? reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) == 1) return;
        _tensors.Stream.Dispose();
        if (reason is not null) _onLost(reason);
    }

    /// <summary>Closes on purpose (nothing reported).</summary>
    public void Dispose() => Close(null);
}
