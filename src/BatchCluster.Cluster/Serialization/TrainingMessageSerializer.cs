using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Serialization;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Links;
using BatchCluster.Core.Data;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace BatchCluster.Cluster.Serialization;

/// <summary>
/// Binary encoding of every <see cref="ITrainingMessage"/> (bound in cluster-config/cluster.hocon).
/// Short, stable manifests; little-endian fields; tensors as raw float32 bytes. Unknown manifests
/// raise <see cref="SerializationException"/>, which makes Akka drop that one message instead of
/// tearing down the connection (docs/decisions.md, "Akka.NET").
/// </summary>
public sealed class TrainingMessageSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int SerializerId = 4107;

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => ManifestOf(o);

    /// <summary>The short, stable name of a message's type on the wire.</summary>
    public static string ManifestOf(object o) => o switch
    {
        TrainingProtocol.RegisterWorker => "rw",
        TrainingProtocol.WorkerAccepted => "wa",
        TrainingProtocol.WorkerRejected => "wj",
        TrainingProtocol.WorkerReady => "wr",
        TrainingProtocol.RunEnded => "re",
        TrainingProtocol.ComputeShare => "cs",
        TrainingProtocol.ShareComputed => "sc",
        TrainingProtocol.Evaluate => "ev",
        TrainingProtocol.EvaluationDone => "ed",
        TrainingProtocol.WorkerLeaving => "wl",
        TrainingProtocol.ShareFailed => "sf",
        TrainingProtocol.EvaluationFailed => "ef",
        TrainingProtocol.ReduceShares => "rs",
        TrainingProtocol.StepSkipped => "sk",
        TrainingProtocol.ReductionFailed => "rf",
        TensorTransferStart => "ts",
        TensorChunk => "tc",
        _ => throw new ArgumentException($"{o.GetType()} is not a message of the training protocol"),
    };

    /// <summary>
    /// One growing buffer per thread (Akka may serialize on several): a message is written there and
    /// copied out once at its exact size, instead of a fresh MemoryStream that doubles its way up
    /// (about 4× a message's size in garbage, per message, on every step).
    /// </summary>
    [ThreadStatic] private static MemoryStream? _scratch;

    public override byte[] ToBinary(object obj) => Encode(obj);

    public override object FromBinary(byte[] bytes, string manifest) => Decode(bytes, manifest);

    /// <summary>A message's bytes (without its manifest), as Akka.Remote and the data plane's message frames carry them.</summary>
    /// <param name="reserve">Zero bytes left in front of the message for the caller's own header (a message frame's), so the
    /// message is copied once, into the array returned.</param>
    public static byte[] Encode(object obj, int reserve = 0)
    {
        var stream = _scratch ??= new MemoryStream(4096);
        stream.SetLength(reserve);
        stream.Position = reserve;
        if (reserve > 0) stream.GetBuffer().AsSpan(0, reserve).Clear();
        using (var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            Write(w, obj);
        var bytes = stream.ToArray();
        if (stream.Capacity > 1 << 20) _scratch = null; // a huge message (a tensor through Akka) is not kept per thread
        return bytes;
    }

    /// <summary>Reads a message of <paramref name="manifest"/> from a peer's bytes.</summary>
    /// <exception cref="SerializationException">Bytes that are not a whole, well-formed message of that manifest.</exception>
    public static object Decode(byte[] bytes, string manifest) => Decode(bytes, 0, manifest);

    /// <summary>As <see cref="Decode(byte[], string)"/>, for a message that starts at <paramref name="offset"/> and runs to the end of <paramref name="bytes"/>.</summary>
    public static object Decode(byte[] bytes, int offset, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes, offset, bytes.Length - offset));
        try
        {
            return Read(r, manifest);
        }
        catch (EndOfStreamException e)
        {
            throw new SerializationException($"truncated '{manifest}' message ({bytes.Length} bytes)", e);
        }
        catch (Exception e) when (e is IOException or FormatException or ArgumentException or OverflowException or InvalidCastException)
        {
            // A forged length (a negative string length, an over-long 7-bit integer): the peer's fault. Only a
            // SerializationException makes Akka drop the one message instead of tearing down the connection.
            throw new SerializationException($"malformed '{manifest}' message ({bytes.Length} bytes): {e.Message}", e);
        }
    }

    private static void Write(BinaryWriter w, object obj)
    {
        switch (obj)
        {
            case TrainingProtocol.RegisterWorker m:
                w.Write(m.WorkerId); w.Write(m.Address); w.Write(m.Device); w.Write(m.Threads); w.Write(m.ProtocolVersion);
                break;
            case TrainingProtocol.WorkerAccepted m:
                w.Write(m.RunId); w.Write(m.Spec.Dataset); w.Write(m.Spec.ValidationSize); w.Write(m.Spec.Model);
                WriteInts(w, m.Spec.HiddenSizes); w.Write(m.Spec.Seed); w.Write(m.Spec.BnBatch);
                w.Write(m.DataPlane is not null);
                if (m.DataPlane is { } offer)
                {
                    w.Write(offer.Host); w.Write(offer.Port); w.Write(offer.Token.Length); w.Write(offer.Token); w.Write((byte)offer.Precision);
                    w.Write(offer.Ring);
                }
                break;
            case TrainingProtocol.WorkerRejected m:
                w.Write(m.Reason);
                break;
            case TrainingProtocol.WorkerReady m:
                w.Write(m.WorkerId); w.Write(m.SamplesPerSecond); w.Write(m.RingPort);
                break;
            case TrainingProtocol.RunEnded m:
                w.Write(m.RunId); w.Write(m.Succeeded);
                break;
            case TrainingProtocol.ComputeShare m:
                w.Write(m.RunId); w.Write(m.Step); w.Write(m.ShareIndex); WriteInts(w, m.SampleIds); w.Write(m.MicroBatch);
                w.Write(m.Parameters.Version); WriteFloats(w, m.Parameters.Values.Span);
                w.Write(m.ThenReduce is not null);
                if (m.ThenReduce is { } plan) Write(w, plan);
                w.Write(m.HalfAt);
                break;
            case TrainingProtocol.ShareComputed m:
                w.Write(m.RunId); w.Write(m.Step); w.Write(m.ParameterVersion); w.Write(m.ShareIndex); w.Write(m.SampleCount);
                w.Write(m.LossSum); WriteFloats(w, m.GradientSum.Span); w.Write(m.GradientSumSquaredNorm); w.Write(m.ComputeMilliseconds);
                w.Write(m.HandlingMilliseconds); w.Write(m.PeakMemoryBytes); w.Write(m.AllocatedBytes); WriteOptionalFloats(w, m.BatchNormSums);
                w.Write(m.Halves is not null);
                if (m.Halves is { } halves) { w.Write(halves.FirstSize); w.Write(halves.FirstSquaredNorm); w.Write(halves.SecondSquaredNorm); }
                break;
            case TrainingProtocol.Evaluate m:
                w.Write(m.RunId); w.Write(m.RequestId); w.Write(m.Part); w.Write((int)m.Split); WriteInts(w, m.Rows);
                w.Write(m.Parameters.Version); WriteFloats(w, m.Parameters.Values.Span); WriteOptionalFloats(w, m.RunningStatistics);
                break;
            case TrainingProtocol.EvaluationDone m:
                w.Write(m.RunId); w.Write(m.RequestId); w.Write(m.Part); w.Write(m.ParameterVersion); w.Write(m.LossSum); w.Write(m.Correct); w.Write(m.Count);
                break;
            case TrainingProtocol.WorkerLeaving m:
                w.Write(m.WorkerId);
                break;
            case TrainingProtocol.ShareFailed m:
                w.Write(m.RunId); w.Write(m.Step); w.Write(m.ShareIndex); w.Write(m.Reason);
                break;
            case TrainingProtocol.EvaluationFailed m:
                w.Write(m.RunId); w.Write(m.RequestId); w.Write(m.Part); w.Write(m.Reason);
                break;
            case TrainingProtocol.ReduceShares m:
                w.Write(m.RunId); w.Write(m.Step); w.Write(m.Version); w.Write(m.Generation); w.Write(m.Epoch); w.Write(m.Index); w.Write(m.Members);
                w.Write(m.ChunkValues); WriteInts(w, m.Slots); w.Write(m.Downstream.Host); w.Write(m.Downstream.Port);
                WriteToken(w, m.Downstream.Token); WriteToken(w, m.UpstreamToken);
                break;
            case TrainingProtocol.StepSkipped m:
                w.Write(m.RunId); w.Write(m.Step); w.Write(m.Version);
                break;
            case TrainingProtocol.ReductionFailed m:
                w.Write(m.RunId); w.Write(m.Step); w.Write(m.Generation); w.Write(m.Reason); w.Write(m.UpstreamSuspected);
                break;
            case TensorTransferStart m:
                w.Write(m.TransferId); w.Write(m.TotalLength); w.Write(m.ChunkCount);
                w.Write(ManifestOf(m.Message)); Write(w, m.Message);
                break;
            case TensorChunk m:
                w.Write(m.TransferId); w.Write(m.Index); WriteFloats(w, m.Values);
                break;
            default:
                throw new ArgumentException($"{obj.GetType()} is not a message of the training protocol");
        }
    }

    private static object Read(BinaryReader r, string manifest) => manifest switch
    {
        "rw" => new TrainingProtocol.RegisterWorker(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt32(), r.ReadInt32()),
        "wa" => new TrainingProtocol.WorkerAccepted(r.ReadString(),
            new TrainingProtocol.RunSpec(r.ReadString(), r.ReadInt32(), r.ReadString(), ReadInts(r), r.ReadInt64(), r.ReadInt32()), ReadOffer(r)),
        "wj" => new TrainingProtocol.WorkerRejected(r.ReadString()),
        "wr" => new TrainingProtocol.WorkerReady(r.ReadString(), r.ReadDouble(), r.ReadInt32()),
        "re" => new TrainingProtocol.RunEnded(r.ReadString(), r.ReadBoolean()),
        "cs" => new TrainingProtocol.ComputeShare(r.ReadString(), r.ReadInt64(), r.ReadInt32(), ReadInts(r), r.ReadInt32(),
            new TrainingProtocol.ParameterSnapshot(r.ReadInt64(), ReadFloats(r)), r.ReadBoolean() ? (TrainingProtocol.ReduceShares)Read(r, "rs") : null,
            r.ReadInt32()),
        "sc" => new TrainingProtocol.ShareComputed(r.ReadString(), r.ReadInt64(), r.ReadInt64(), r.ReadInt32(), r.ReadInt32(),
            r.ReadDouble(), ReadFloats(r), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadInt64(), r.ReadInt64(), ReadOptionalFloats(r),
            r.ReadBoolean() ? new TrainingProtocol.HalfNorms(r.ReadInt32(), r.ReadDouble(), r.ReadDouble()) : null),
        "ev" => new TrainingProtocol.Evaluate(r.ReadString(), r.ReadInt32(), r.ReadInt32(), ReadSplit(r), ReadInts(r),
            new TrainingProtocol.ParameterSnapshot(r.ReadInt64(), ReadFloats(r)), ReadOptionalFloats(r)),
        "ed" => new TrainingProtocol.EvaluationDone(r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadInt64(), r.ReadDouble(), r.ReadInt64(), r.ReadInt64()),
        "wl" => new TrainingProtocol.WorkerLeaving(r.ReadString()),
        "sf" => new TrainingProtocol.ShareFailed(r.ReadString(), r.ReadInt64(), r.ReadInt32(), r.ReadString()),
        "ef" => new TrainingProtocol.EvaluationFailed(r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadString()),
        "rs" => new TrainingProtocol.ReduceShares(r.ReadString(), r.ReadInt64(), r.ReadInt64(), r.ReadInt32(), r.ReadInt64(), r.ReadInt32(),
            r.ReadInt32(), r.ReadInt32(), ReadInts(r), new TrainingProtocol.RingPeer(r.ReadString(), r.ReadInt32(), ReadToken(r)), ReadToken(r)),
        "sk" => new TrainingProtocol.StepSkipped(r.ReadString(), r.ReadInt64(), r.ReadInt64()),
        "rf" => new TrainingProtocol.ReductionFailed(r.ReadString(), r.ReadInt64(), r.ReadInt32(), r.ReadString(), r.ReadBoolean()),
        "ts" => ReadTransferStart(r),
        "tc" => new TensorChunk(r.ReadInt64(), r.ReadInt32(), ReadFloats(r)),
        _ => throw new SerializationException($"unknown manifest '{manifest}' for the training protocol (a peer of another version?)"),
    };

    private static TensorTransferStart ReadTransferStart(BinaryReader r)
    {
        long id = r.ReadInt64();
        int total = r.ReadInt32();
        int chunks = r.ReadInt32();
        string inner = r.ReadString();
        // Checked before reading: a transfer inside a transfer inside … would recurse as deep as the message is long.
        if (inner is not ("cs" or "sc" or "ev"))
            throw new SerializationException($"transfer {id} wraps '{inner}', which carries no tensor");
        if (Read(r, inner) is not ITensorMessage message)
            throw new SerializationException($"transfer {id} wraps '{inner}', which carries no tensor");
        return new TensorTransferStart(id, message, total, chunks);
    }

    private static Links.DataPlaneOffer? ReadOffer(BinaryReader r)
    {
        if (!r.ReadBoolean()) return null;
        string host = r.ReadString();
        int port = r.ReadInt32();
        var token = ReadToken(r);
        byte precision = r.ReadByte();
        if (!Enum.IsDefined(typeof(Core.Training.TransferPrecision), (int)precision)) throw new SerializationException($"unknown transfer precision {precision}");
        return new Links.DataPlaneOffer(host, port, token, (Core.Training.TransferPrecision)precision, r.ReadBoolean());
    }

    private static void WriteToken(BinaryWriter w, byte[] token)
    {
        w.Write(token.Length);
        w.Write(token);
    }

    /// <summary>A connection token: exactly <see cref="Links.FrameHeader.TokenBytes"/> bytes, checked before they are read.</summary>
    private static byte[] ReadToken(BinaryReader r)
    {
        int length = r.ReadInt32();
        if (length != Links.FrameHeader.TokenBytes) throw new SerializationException($"a token of {length} bytes (expected {Links.FrameHeader.TokenBytes})");
        var token = r.ReadBytes(length);
        if (token.Length != length) throw new EndOfStreamException();
        return token;
    }

    private static DataSplit ReadSplit(BinaryReader r)
    {
        int value = r.ReadInt32();
        return Enum.IsDefined(typeof(DataSplit), value) ? (DataSplit)value : throw new SerializationException($"unknown data split {value}");
    }

    private static void WriteInts(BinaryWriter w, int[] values)
    {
        w.Write(values.Length);
        w.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static int[] ReadInts(BinaryReader r)
    {
        var values = new int[ReadLength(r, sizeof(int))];
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    private static void WriteFloats(BinaryWriter w, ReadOnlySpan<float> values)
    {
        w.Write(values.Length);
        w.Write(MemoryMarshal.AsBytes(values));
    }

    private static float[] ReadFloats(BinaryReader r) => ReadFloats(r, ReadLength(r, sizeof(float)));

    private static float[] ReadFloats(BinaryReader r, int length)
    {
        var values = new float[length];
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    /// <summary>An array that may be absent (a -1 length).</summary>
    private static void WriteOptionalFloats(BinaryWriter w, float[]? values)
    {
        if (values is null) w.Write(-1);
        else WriteFloats(w, values);
    }

    private static float[]? ReadOptionalFloats(BinaryReader r)
    {
        int length = CheckLength(r, r.ReadInt32(), sizeof(float), absentAllowed: true);
        return length == -1 ? null : ReadFloats(r, length);
    }

    /// <summary>A length prefix that cannot exceed what is left in the message.</summary>
    private static int ReadLength(BinaryReader r, int elementSize) => CheckLength(r, r.ReadInt32(), elementSize, absentAllowed: false);

    private static int CheckLength(BinaryReader r, int length, int elementSize, bool absentAllowed)
    {
        if (absentAllowed && length == -1) return length;
        long left = r.BaseStream.Length - r.BaseStream.Position;
        if (length < 0 || (long)length * elementSize > left)
            throw new SerializationException($"array length {length} does not fit the {left} bytes left in the message");
        return length;
    }

    static TrainingMessageSerializer()
    {
        // Tensors and ints go as raw memory: only little-endian hosts (x86-64, ARM64) are supported.
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("BatchCluster's wire format needs a little-endian host");
    }
}
