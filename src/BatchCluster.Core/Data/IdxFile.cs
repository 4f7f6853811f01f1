using System.Buffers.Binary;
using System.IO.Compression;

namespace BatchCluster.Core.Data;

/// <summary>
/// Reads the IDX format of MNIST and Fashion-MNIST: a big-endian int32 magic (0x00000803 for
/// unsigned-byte images of rank 3, 0x00000801 for labels of rank 1), one big-endian int32 per
/// dimension, then the bytes. Files may be gzip-compressed (detected by content, not by name).
/// </summary>
public static class IdxFile
{
    public const int ImagesMagic = 0x00000803;
    public const int LabelsMagic = 0x00000801;

    public sealed record Images(int Count, int Height, int Width, byte[] Pixels);

    /// <summary>The most data bytes one file may declare (Fashion-MNIST's training images are 47 MB).</summary>
    public const long MaxPayloadBytes = 1L << 30;

    public static Images ReadImages(string path)
    {
        var (dims, pixels) = Read(path, ImagesMagic, "images");
        return new Images(dims[0], dims[1], dims[2], pixels);
    }

    public static byte[] ReadLabels(string path, int classCount)
    {
        var (_, labels) = Read(path, LabelsMagic, "labels");
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= classCount)
                throw new DataSetException(
                    $"{path}: label {labels[i]} at index {i} is out of range 0..{classCount - 1}; the file is corrupt or not a {classCount}-class label file");
        }
        return labels;
    }

    /// <summary>Writes an uncompressed IDX file (used by tests and tools that make small data sets).</summary>
    public static void Write(string path, int magic, int[] dims, ReadOnlySpan<byte> payload)
    {
        using var stream = File.Create(path);
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, magic);
        stream.Write(word);
        foreach (int d in dims)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, d);
            stream.Write(word);
        }
        stream.Write(payload);
    }

    /// <summary>
    /// Reads the header, then exactly the bytes it declares (at most <see cref="MaxPayloadBytes"/>) and
    /// checks that nothing follows. Nothing beyond the declared size is ever read or held, so neither a
    /// huge file nor a gzip stream that inflates without end (a "gzip bomb") costs more than that.
    /// </summary>
    private static (int[] Dims, byte[] Payload) Read(string path, int expectedMagic, string kind)
    {
        if (!File.Exists(path))
            throw new DataSetException($"{path}: file not found");
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> start = stackalloc byte[2];
        bool gzip = file.ReadAtLeast(start, 2, throwOnEndOfStream: false) == 2 && start[0] == 0x1f && start[1] == 0x8b;
        file.Position = 0;
        using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
        try
        {
            int rank = expectedMagic & 0xff;
            int headerLength = 4 + 4 * rank;
            var header = new byte[headerLength];
            int got = stream.ReadAtLeast(header.AsSpan(0, 4), 4, throwOnEndOfStream: false);
            if (got < 4)
                throw new DataSetException($"{path}: {got} bytes is too short for an IDX {kind} header ({headerLength} bytes); the file is truncated");
            int magic = BinaryPrimitives.ReadInt32BigEndian(header);
            if (magic != expectedMagic)
                throw new DataSetException($"{path}: bad magic number 0x{magic:x8}, expected 0x{expectedMagic:x8} for IDX {kind}; is this the right file?");
            got += stream.ReadAtLeast(header.AsSpan(4), headerLength - 4, throwOnEndOfStream: false);
            if (got < headerLength)
                throw new DataSetException($"{path}: {got} bytes is too short for an IDX {kind} header ({headerLength} bytes); the file is truncated");
            var dims = new int[rank];
            long expected = 1;
            for (int i = 0; i < rank; i++)
            {
                dims[i] = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4 + 4 * i));
                if (dims[i] <= 0)
                    throw new DataSetException($"{path}: dimension {i} is {dims[i]}; IDX dimensions must be positive");
                expected *= dims[i];
                if (expected > MaxPayloadBytes)
                    throw new DataSetException($"{path}: the header declares more than {MaxPayloadBytes >> 30} GiB of data ({string.Join(" × ", dims.Take(i + 1))} …); this is not a data set BatchCluster reads");
            }
            var payload = new byte[expected];
            long actual = stream.ReadAtLeast(payload, payload.Length, throwOnEndOfStream: false);
            if (actual < expected)
                throw new DataSetException($"{path}: truncated: the header promises {expected} data bytes but only {actual} follow");
            Span<byte> extra = stackalloc byte[4096];
            long surplus = 0;
            const int countedSurplus = 1 << 20; // counted up to here, not further (a bomb would inflate on and on)
            for (int n; surplus < countedSurplus && (n = stream.Read(extra)) > 0;) surplus += n;
            if (surplus > 0)
                throw new DataSetException($"{path}: {(surplus >= countedSurplus ? "more than 1 MiB of" : surplus.ToString())} unexpected bytes after the {expected} data bytes the header promises");
            return (dims, payload);
        }
        catch (InvalidDataException e)
        {
            throw new DataSetException($"{path}: the gzip stream is damaged or truncated ({e.Message}); re-install or re-download the file");
        }
    }
}
