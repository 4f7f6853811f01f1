using System.Runtime.InteropServices;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// Reads checked tensor frames from a stream (a NetworkStream today, an SslStream tomorrow). One
/// per connection, used by one reader at a time. The header is validated before a payload byte
/// is read; the values land in a buffer from <see cref="TensorBuffers"/> that the caller owns.
/// </summary>
public sealed class TensorStream(Stream stream, DataPlaneRun run)
{
    private readonly byte[] _header = new byte[FrameHeader.Size];
    private readonly byte[] _headerOut = new byte[FrameHeader.Size];
    /// <summary>Payload scratch for bf16 (fp32 is read straight into the tensor, and written straight from it), allocated once per direction.</summary>
    private byte[]? _narrow, _narrowOut;

    public Stream Stream { get; } = stream;

    /// <summary>
    /// Blocks until the next frame is read whole. Readers run on threads of their own: a blocking
    /// read wakes straight from the kernel, where an async read hops through the thread pool once per
    /// socket buffer, which on a busy machine costs more than the copy itself.
    /// </summary>
    /// <exception cref="InvalidDataException">A frame that is not the expected one, or whose checksum fails.</exception>
    /// <exception cref="EndOfStreamException">The peer closed the connection.</exception>
    public (FrameHeader Header, float[] Values) Read(FrameKind kind)
    {
        Stream.ReadExactly(_header);
        var header = FrameHeader.Read(_header, kind, run.RunTag, run.ParameterCount, run.Precision);
        var values = TensorBuffers.Rent(run.ParameterCount);
        try
        {
            ulong checksum;
            if (run.Precision == TransferPrecision.Fp32)
            {
                var bytes = MemoryMarshal.AsBytes(values.AsSpan());
                Stream.ReadExactly(bytes);
                checksum = FramePayload.Checksum(bytes);
            }
            else
            {
                _narrow ??= new byte[header.PayloadBytes];
                Stream.ReadExactly(_narrow);
                checksum = FramePayload.Checksum(_narrow);
                FramePayload.Decode(_narrow, run.Precision, values);
            }
            if (checksum != header.Checksum)
                throw new InvalidDataException($"the payload of a {kind} frame (step {header.Step}) fails its checksum");
            return (header, values);
        }
        catch
        {
            TensorBuffers.Return(values);
            throw;
        }
    }

    /// <summary>
    /// Reads frames of <paramref name="kind"/> and hands each to <paramref name="deliver"/> (which
    /// owns its values) until the stream ends or a frame is refused; the loop of both ends' reader
    /// threads.
    /// </summary>
    /// <returns>Why reading stopped, for the connection's loss report.</returns>
    public string ReadUntilClosed(FrameKind kind, Action<FrameHeader, float[]> deliver, string peer)
    {
        try
        {
            while (true)
            {
                var (header, values) = Read(kind);
                deliver(header, values);
            }
        }
        catch (EndOfStreamException)
        {
            return $"{peer} closed the data connection";
        }
        catch (Exception e)
        {
            return e.Message;
        }
    }

    /// <summary>Writes one tensor frame from the caller's thread (the worker's gradient): header (run, precision, count and checksum filled in here), then the payload.</summary>
    public void Write(FrameHeader header, ReadOnlySpan<float> values)
    {
        ReadOnlySpan<byte> payload;
        if (run.Precision == TransferPrecision.Fp32)
        {
            payload = MemoryMarshal.AsBytes(values);
        }
        else
        {
            _narrowOut ??= new byte[values.Length * 2];
            FramePayload.Encode(values, run.Precision, _narrowOut);
            payload = _narrowOut;
        }
        (header with { RunTag = run.RunTag, Precision = run.Precision, Count = values.Length, Checksum = FramePayload.Checksum(payload) }).Write(_headerOut);
        Stream.Write(_headerOut);
        Stream.Write(payload);
    }
}
