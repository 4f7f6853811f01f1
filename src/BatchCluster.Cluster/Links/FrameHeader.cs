using System.Buffers.Binary;
using System.IO.Hashing;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

/// <summary>What a data-plane frame carries.</summary>
public enum FrameKind : byte
{
    /// <summary>Worker → coordinator, first frame: the registration token (32 bytes) as payload.</summary>
    Hello = 1,
    /// <summary>Coordinator → worker: the token was valid; no payload.</summary>
    HelloAccepted = 2,
    /// <summary>Coordinator → worker: the parameters at <see cref="FrameHeader.Version"/>.</summary>
    Parameters = 3,
    /// <summary>Worker → coordinator: the gradient sum of share <see cref="FrameHeader.Slot"/> of <see cref="FrameHeader.Step"/>.</summary>
    GradientSum = 4,
}

/// <summary>
/// The fixed 48-byte header in front of every data-plane payload (little-endian):
/// magic "BCDP", format, kind, precision, run tag, step, parameter version, slot, value count and
/// the XxHash3 of the payload bytes. The receiver checks every field against what it expects
/// before it reads a payload byte, so a peer cannot make it allocate or read more than one
/// tensor of the run's model.
/// </summary>
public readonly record struct FrameHeader(
    FrameKind Kind, TransferPrecision Precision, ulong RunTag, long Step, long Version, int Slot, int Count, ulong Checksum)
{
    public const int Size = 48;
    public const uint Magic = 0x50444342; // "BCDP" read as a little-endian uint
    public const ushort Format = 1;
    /// <summary>Bytes of the registration token in a Hello frame.</summary>
    public const int TokenBytes = 32;

    /// <summary>Payload bytes that follow this header.</summary>
    public int PayloadBytes => Kind switch
    {
        FrameKind.Hello => TokenBytes,
        FrameKind.HelloAccepted => 0,
        _ => Count * BytesPerValue(Precision),
    };

    public static int BytesPerValue(TransferPrecision precision) => precision == TransferPrecision.Bf16 ? 2 : 4;

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], Format);
        destination[6] = (byte)Kind;
        destination[7] = (byte)Precision;
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], RunTag);
        BinaryPrimitives.WriteInt64LittleEndian(destination[16..], Step);
        BinaryPrimitives.WriteInt64LittleEndian(destination[24..], Version);
        BinaryPrimitives.WriteInt32LittleEndian(destination[32..], Slot);
        BinaryPrimitives.WriteInt32LittleEndian(destination[36..], Count);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[40..], Checksum);
    }

    /// <summary>The worker's first frame: a Hello header and its token.</summary>
    public static byte[] Hello(TransferPrecision precision, ReadOnlySpan<byte> token)
    {
        var bytes = new byte[Size + token.Length];
        new FrameHeader(FrameKind.Hello, precision, 0, 0, 0, -1, 0, FramePayload.Checksum(token)).Write(bytes);
        token.CopyTo(bytes.AsSpan(Size));
        return bytes;
    }

    /// <summary>The coordinator's answer to a valid Hello (a header alone).</summary>
    public static byte[] HelloAccepted(DataPlaneRun run)
    {
        var bytes = new byte[Size];
        new FrameHeader(FrameKind.HelloAccepted, run.Precision, run.RunTag, 0, 0, -1, 0, 0).Write(bytes);
        return bytes;
    }

    /// <summary>Parses and checks a header against what the receiver expects next.</summary>
    /// <exception cref="InvalidDataException">Anything but the expected frame, with one sentence saying what.</exception>
    public static FrameHeader Read(ReadOnlySpan<byte> source, FrameKind expectedKind, ulong runTag, int expectedCount, TransferPrecision precision)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(source) != Magic) throw new InvalidDataException("not a BatchCluster data-plane frame (bad magic)");
        ushort format = BinaryPrimitives.ReadUInt16LittleEndian(source[4..]);
        if (format != Format) throw new InvalidDataException($"frame format {format}, expected {Format}: run the same BatchCluster build on every node");
        var header = new FrameHeader((FrameKind)source[6], (TransferPrecision)source[7], BinaryPrimitives.ReadUInt64LittleEndian(source[8..]),
            BinaryPrimitives.ReadInt64LittleEndian(source[16..]), BinaryPrimitives.ReadInt64LittleEndian(source[24..]),
            BinaryPrimitives.ReadInt32LittleEndian(source[32..]), BinaryPrimitives.ReadInt32LittleEndian(source[36..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[40..]));
        if (header.Kind != expectedKind) throw new InvalidDataException($"a {header.Kind} frame where a {expectedKind} frame was due");
        if (header.Kind == FrameKind.Hello) return header; // the run tag is what the token proves
        if (header.RunTag != runTag) throw new InvalidDataException("a frame of another run");
        if (header.Precision != precision) throw new InvalidDataException($"a {header.Precision} frame in a {precision} run");
        if (header.Count != expectedCount) throw new InvalidDataException($"{header.Count} values declared where the model has {expectedCount}");
        return header;
    }

    /// <summary>The tag of a run id in frame headers (a frame of an earlier run of the same coordinator is refused).</summary>
    public static ulong TagOf(string runId) => XxHash3.HashToUInt64(System.Text.Encoding.UTF8.GetBytes(runId));
}
