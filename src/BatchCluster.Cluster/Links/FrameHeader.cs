using System.Buffers.Binary;
using System.IO.Hashing;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

/// <summary>What a data-plane frame carries.</summary>
public enum FrameKind : byte
{
    /// <summary>First frame of a connection (worker → coordinator, or ring member → its downstream neighbour): the token (32 bytes) as payload.</summary>
    Hello = 1,
    /// <summary>The token was valid; no payload.</summary>
    HelloAccepted = 2,
    /// <summary>Coordinator → worker: the whole model's parameters at <see cref="FrameHeader.Version"/>.</summary>
    Parameters = 3,
    /// <summary>Worker → coordinator: the gradient sum of share <see cref="FrameHeader.Slot"/> of <see cref="FrameHeader.Step"/> (star).</summary>
    GradientSum = 4,
    /// <summary>Ring member → coordinator, ahead of its shard: the squared L2 norm of its reduced shard in <see cref="FrameHeader.Scalar"/>; no payload.</summary>
    ShardNorm = 5,
    /// <summary>Ring member → coordinator: one chunk of its reduced shard (the whole ring's gradient sum over [Offset, Offset + Count)).</summary>
    ReducedShard = 6,
    /// <summary>Coordinator → ring member: one chunk of its shard, updated, at parameter version <see cref="FrameHeader.Version"/>.</summary>
    UpdatedShard = 7,
    /// <summary>Ring member → its downstream neighbour: one chunk of a reduce-scatter (<see cref="FrameHeader.Slot"/> 0) or all-gather (1) round.</summary>
    RingChunk = 8,
    /// <summary>
    /// A training-protocol message on the data connection instead of Akka.Remote (coordinator → worker: ComputeShare;
    /// worker → coordinator: ShareComputed), so that a message and its tensor reach the receiver through one reader
    /// thread, one wake-up per direction. Payload: the manifest's length (one byte), the manifest (ASCII), the message's
    /// bytes (<see cref="Serialization.TrainingMessageSerializer"/>); <see cref="FrameHeader.Count"/> is the payload's
    /// length in bytes, at most <see cref="FrameHeader.MaxMessageBytes"/>.
    /// </summary>
    Message = 9,
}

/// <summary>
/// The fixed 64-byte header in front of every data-plane payload (little-endian): magic "BCDP",
/// format, kind, precision, run tag, step, parameter version, ring generation, slot, offset into
/// the model, value count, the XxHash3 of the payload bytes, and one scalar. The receiver checks
/// every field against what it expects before it reads a payload byte, so a peer cannot make it
/// allocate or read more than the run's model: a whole-model frame declares exactly the model's
/// size, a ranged frame (shards, ring chunks) a range inside the model.
/// </summary>
public readonly record struct FrameHeader(
    FrameKind Kind, TransferPrecision Precision, ulong RunTag, long Step, long Version, int Slot, int Count, ulong Checksum)
{
    public const int Size = 64;
    public const uint Magic = 0x50444342; // "BCDP" read as a little-endian uint
    public const ushort Format = 3;
    /// <summary>The largest message frame's payload: Akka.Remote's frame limit (cluster.hocon), which the same message would meet there.</summary>
    public const int MaxMessageBytes = 4 << 20;
    /// <summary>Bytes of the token in a Hello frame.</summary>
    public const int TokenBytes = 32;

    /// <summary>The ring's generation within a step (a ring re-formed after a fault counts up); 0 in star frames.</summary>
    public int Generation { get; init; }
    /// <summary>Where a ranged frame's values start in the flat model; 0 for whole-model frames.</summary>
    public int Offset { get; init; }
    /// <summary>A frame's one number besides its values (the squared norm of a ShardNorm frame).</summary>
    public double Scalar { get; init; }

    /// <summary>Payload bytes that follow this header.</summary>
    public int PayloadBytes => Kind switch
    {
        FrameKind.Hello => TokenBytes,
        FrameKind.HelloAccepted or FrameKind.ShardNorm => 0,
        FrameKind.Message => Count,
        _ => Count * BytesPerValue(Precision),
    };

    /// <summary>Whether the frame covers a range of the model (Offset, Count) rather than all of it.</summary>
    public static bool IsRanged(FrameKind kind) => kind is FrameKind.ReducedShard or FrameKind.UpdatedShard or FrameKind.RingChunk;

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
        BinaryPrimitives.WriteInt32LittleEndian(destination[32..], Generation);
        BinaryPrimitives.WriteInt32LittleEndian(destination[36..], Slot);
        BinaryPrimitives.WriteInt32LittleEndian(destination[40..], Offset);
        BinaryPrimitives.WriteInt32LittleEndian(destination[44..], Count);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[48..], Checksum);
        BinaryPrimitives.WriteDoubleLittleEndian(destination[56..], Scalar);
    }

    /// <summary>A connection's first frame: a Hello header and its token.</summary>
    public static byte[] Hello(TransferPrecision precision, ReadOnlySpan<byte> token)
    {
        var bytes = new byte[Size + token.Length];
        new FrameHeader(FrameKind.Hello, precision, 0, 0, 0, -1, 0, FramePayload.Checksum(token)).Write(bytes);
        token.CopyTo(bytes.AsSpan(Size));
        return bytes;
    }

    /// <summary>The answer to a valid Hello (a header alone).</summary>
    public static byte[] HelloAccepted(DataPlaneRun run)
    {
        var bytes = new byte[Size];
        new FrameHeader(FrameKind.HelloAccepted, run.Precision, run.RunTag, 0, 0, -1, 0, 0).Write(bytes);
        return bytes;
    }

    /// <summary>Parses and checks a header against what the receiver expects next.</summary>
    /// <param name="parameterCount">The model's size: a whole-model frame must declare exactly it, a ranged frame a range inside it.</param>
    /// <exception cref="InvalidDataException">Anything but an expected frame, with one sentence saying what.</exception>
    public static FrameHeader Read(ReadOnlySpan<byte> source, FrameKind expectedKind, ulong runTag, int parameterCount, TransferPrecision precision) =>
        Read(source, [expectedKind], runTag, parameterCount, precision);

    /// <inheritdoc cref="Read(ReadOnlySpan{byte}, FrameKind, ulong, int, TransferPrecision)"/>
    public static FrameHeader Read(ReadOnlySpan<byte> source, ReadOnlySpan<FrameKind> expectedKinds, ulong runTag, int parameterCount, TransferPrecision precision)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(source) != Magic) throw new InvalidDataException("not a BatchCluster data-plane frame (bad magic)");
        ushort format = BinaryPrimitives.ReadUInt16LittleEndian(source[4..]);
        if (format != Format) throw new InvalidDataException($"frame format {format}, expected {Format}: run the same BatchCluster build on every node");
        var header = new FrameHeader((FrameKind)source[6], (TransferPrecision)source[7], BinaryPrimitives.ReadUInt64LittleEndian(source[8..]),
            BinaryPrimitives.ReadInt64LittleEndian(source[16..]), BinaryPrimitives.ReadInt64LittleEndian(source[24..]),
            BinaryPrimitives.ReadInt32LittleEndian(source[36..]), BinaryPrimitives.ReadInt32LittleEndian(source[44..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[48..]))
        {
            Generation = BinaryPrimitives.ReadInt32LittleEndian(source[32..]),
            Offset = BinaryPrimitives.ReadInt32LittleEndian(source[40..]),
            Scalar = BinaryPrimitives.ReadDoubleLittleEndian(source[56..]),
        };
        if (!expectedKinds.Contains(header.Kind))
            throw new InvalidDataException($"a {header.Kind} frame where a {string.Join(" or ", expectedKinds.ToArray())} frame was due");
        if (header.Kind == FrameKind.Hello) return header; // the run tag is what the token proves
        if (header.RunTag != runTag) throw new InvalidDataException("a frame of another run");
        if (header.Precision != precision) throw new InvalidDataException($"a {header.Precision} frame in a {precision} run");
        if (header.Kind is FrameKind.HelloAccepted or FrameKind.ShardNorm)
        {
            if (header.Count != 0) throw new InvalidDataException($"a {header.Kind} frame declares {header.Count} values; it carries none");
        }
        else if (header.Kind == FrameKind.Message)
        {
            if (header.Count <= 0 || header.Count > MaxMessageBytes)
                throw new InvalidDataException($"a message frame declares {header.Count} bytes; a message has 1 to {MaxMessageBytes}");
        }
        else if (IsRanged(header.Kind))
        {
            if (header.Count <= 0 || header.Offset < 0 || header.Offset > parameterCount - header.Count)
                throw new InvalidDataException($"a {header.Kind} frame declares values [{header.Offset}, {(long)header.Offset + header.Count}) of a model of {parameterCount}");
        }
        else if (header.Count != parameterCount || header.Offset != 0)
            throw new InvalidDataException($"{header.Count} values declared where the model has {parameterCount}");
        return header;
    }

    /// <summary>The tag of a run id in frame headers (a frame of an earlier run of the same coordinator is refused).</summary>
    public static ulong TagOf(string runId) => XxHash3.HashToUInt64(System.Text.Encoding.UTF8.GetBytes(runId));
}
