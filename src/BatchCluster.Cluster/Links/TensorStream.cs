using System.Runtime.InteropServices;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// Reads and writes checked tensor frames on a stream (a NetworkStream, or an SslStream over it).
/// One reader and one writer at a time. A header is validated before a payload byte is read; the
/// values land in a buffer the caller gives or one from <see cref="TensorBuffers"/> the caller then owns.
/// </summary>
public sealed class TensorStream(Stream stream, DataPlaneRun run)
{
    private readonly byte[] _header = new byte[FrameHeader.Size];
    /// <summary>Payload scratch for reading bf16 (fp32 is read straight into the tensor), grown to the largest frame.</summary>
    private byte[] _narrow = [];
    /// <summary>The frame being written (header and encoded payload), grown to the largest frame: allocated once per connection.</summary>
    private byte[] _frameOut = [];

    public Stream Stream { get; } = stream;
    public DataPlaneRun Run { get; } = run;

    /// <summary>
    /// Blocks until the next header is read and checked. Readers run on threads of their own: a
    /// blocking read wakes straight from the kernel, where an async read hops through the thread
    /// pool once per socket buffer, which on a busy machine costs more than the copy itself.
    /// </summary>
    /// <exception cref="InvalidDataException">A frame that is not one of <paramref name="kinds"/>, or declares values the model does not have.</exception>
    /// <exception cref="EndOfStreamException">The peer closed the connection.</exception>
    public FrameHeader ReadHeader(ReadOnlySpan<FrameKind> kinds)
    {
        Stream.ReadExactly(_header);
        return FrameHeader.Read(_header, kinds, Run.RunTag, Run.ParameterCount, Run.Precision);
    }

    /// <summary>Reads the payload of <paramref name="header"/> into <paramref name="destination"/> (exactly its values) and checks its checksum.</summary>
    /// <exception cref="InvalidDataException">The payload fails its checksum (<paramref name="destination"/> then holds garbage).</exception>
    public void ReadPayload(FrameHeader header, Span<float> destination)
    {
        if (destination.Length != header.Count) throw new ArgumentException($"a frame of {header.Count} values read into {destination.Length}");
        ulong checksum;
        if (Run.Precision == TransferPrecision.Fp32)
        {
            var bytes = MemoryMarshal.AsBytes(destination);
            Stream.ReadExactly(bytes);
            checksum = FramePayload.Checksum(bytes);
        }
        else
        {
            if (_narrow.Length < header.PayloadBytes) _narrow = new byte[header.PayloadBytes];
            var narrow = _narrow.AsSpan(0, header.PayloadBytes);
            Stream.ReadExactly(narrow);
            checksum = FramePayload.Checksum(narrow);
            FramePayload.Decode(narrow, Run.Precision, destination);
        }
        if (checksum != header.Checksum)
            throw new InvalidDataException($"the payload of a {header.Kind} frame (step {header.Step}) fails its checksum");
    }

    /// <summary>Reads the next frame whole; its values land in a pooled buffer of exactly its length, which the caller owns.</summary>
    public (FrameHeader Header, float[] Values) Read(ReadOnlySpan<FrameKind> kinds)
    {
        var header = ReadHeader(kinds);
        return (header, ReadValues(header));
    }

    /// <summary>The payload of a message frame (its length checked by <see cref="FrameHeader.Read(ReadOnlySpan{byte}, ReadOnlySpan{FrameKind}, ulong, int, TransferPrecision)"/>), checksum checked.</summary>
    private byte[] ReadMessagePayload(FrameHeader header)
    {
        var payload = new byte[header.Count];
        Stream.ReadExactly(payload);
        if (FramePayload.Checksum(payload) != header.Checksum)
            throw new InvalidDataException("the payload of a message frame fails its checksum");
        return payload;
    }

    private float[] ReadValues(FrameHeader header)
    {
        var values = TensorBuffers.Rent(header.Count);
        try
        {
            ReadPayload(header, values);
            return values;
        }
        catch
        {
            TensorBuffers.Return(values);
            throw;
        }
    }

    /// <summary>
    /// Reads frames of <paramref name="kinds"/> and hands each to <paramref name="deliver"/> (which
    /// owns its values) until the stream ends or a frame is refused; the loop of the data plane's
    /// reader threads.
    /// </summary>
    /// <returns>Why reading stopped, for the connection's loss report.</returns>
    /// <param name="deliverMessage">Where message frames go (their payload, checked against its checksum); they must be among <paramref name="kinds"/>.</param>
    public string ReadUntilClosed(FrameKind[] kinds, Action<FrameHeader, float[]> deliver, string peer, Action<FrameHeader, byte[]>? deliverMessage = null)
    {
        try
        {
            while (true)
            {
                var header = ReadHeader(kinds);
                if (header.Kind == FrameKind.Message)
                {
                    var payload = ReadMessagePayload(header);
                    (deliverMessage ?? throw new InvalidDataException("a message frame where none is read"))(header, payload);
                    continue;
                }
                deliver(header, ReadValues(header));
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

    /// <summary>
    /// Writes one frame from the caller's thread: the header (run, precision, count and checksum
    /// filled in here) and the payload, encoded into one buffer and written at once. Two writes on a
    /// socket without Nagle's delay would send the 64-byte header as a packet of its own; for the
    /// ring's small chunks that was a packet, and its interrupt, per frame.
    /// </summary>
    public void Write(FrameHeader header, ReadOnlySpan<float> values)
    {
        int payloadBytes = values.Length * FrameHeader.BytesPerValue(Run.Precision);
        if (_frameOut.Length < FrameHeader.Size + payloadBytes) _frameOut = new byte[FrameHeader.Size + payloadBytes];
        var payload = _frameOut.AsSpan(FrameHeader.Size, payloadBytes);
        FramePayload.Encode(values, Run.Precision, payload);
        (header with { RunTag = Run.RunTag, Precision = Run.Precision, Count = values.Length, Checksum = FramePayload.Checksum(payload) }).Write(_frameOut);
        Stream.Write(_frameOut, 0, FrameHeader.Size + payloadBytes);
    }
}
