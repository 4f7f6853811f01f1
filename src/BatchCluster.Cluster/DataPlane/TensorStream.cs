using System.Runtime.InteropServices;
using BatchCluster.Cluster.Transport;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.DataPlane;

/// <summary>What both ends of a data connection agree on for a run: every frame is checked against it.</summary>
/// <param name="ParameterCount">The model's flat length: the only tensor size a frame may declare.</param>
public sealed record DataPlaneRun(ulong RunTag, int ParameterCount, TransferPrecision Precision);

/// <summary>
/// Reads checked tensor frames from a stream (a NetworkStream today, an SslStream tomorrow). One
/// per connection, used by one reader at a time. The header is validated before a payload byte
/// is read; the values land in a buffer from <see cref="TensorBuffers"/> that the caller owns.
/// </summary>
public sealed class TensorStream(Stream stream, DataPlaneRun run)
{
    private readonly byte[] _header = new byte[FrameHeader.Size];
    /// <summary>Payload scratch for bf16 (fp32 is read straight into the tensor), allocated once.</summary>
    private byte[]? _narrow;

    public Stream Stream { get; } = stream;

    /// <exception cref="InvalidDataException">A frame that is not the expected one, or whose checksum fails.</exception>
    /// <exception cref="EndOfStreamException">The peer closed the connection.</exception>
    public async ValueTask<(FrameHeader Header, float[] Values)> ReadAsync(FrameKind kind, CancellationToken cancellation)
    {
        await Stream.ReadExactlyAsync(_header, cancellation).ConfigureAwait(false);
        var header = FrameHeader.Read(_header, kind, run.RunTag, run.ParameterCount, run.Precision);
        var values = TensorBuffers.Rent(run.ParameterCount);
        try
        {
            ulong checksum;
            if (run.Precision == TransferPrecision.Fp32)
            {
                await Stream.ReadExactlyAsync(AsBytes(values), cancellation).ConfigureAwait(false);
                checksum = FramePayload.Checksum(MemoryMarshal.AsBytes(values.AsSpan()));
            }
            else
            {
                _narrow ??= new byte[header.PayloadBytes];
                await Stream.ReadExactlyAsync(_narrow, cancellation).ConfigureAwait(false);
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

    private readonly byte[] _headerOut = new byte[FrameHeader.Size];
    private byte[]? _narrowOut;

    /// <summary>The float array as the bytes it holds (a Memory for async reads).</summary>
    private static Memory<byte> AsBytes(float[] values) => new FloatBytes(values).Memory;

    /// <summary>Exposes a float[] as Memory&lt;byte&gt; without copying (MemoryMarshal.AsBytes has no Memory overload).</summary>
    private sealed class FloatBytes(float[] values) : System.Buffers.MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(values.AsSpan());

        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(values, GCHandleType.Pinned);
            unsafe
            {
                return new System.Buffers.MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
            }
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
