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

    public static Images ReadImages(string path)
    {
        byte[] bytes = ReadAllMaybeGzip(path);
        int[] dims = ReadHeader(path, bytes, ImagesMagic, "images");
        long expected = (long)dims[0] * dims[1] * dims[2];
        byte[] pixels = Payload(path, bytes, 16, expected);
        return new Images(dims[0], dims[1], dims[2], pixels);
    }

    public static byte[] ReadLabels(string path, int classCount)
    {
        byte[] bytes = ReadAllMaybeGzip(path);
        int[] dims = ReadHeader(path, bytes, LabelsMagic, "labels");
        byte[] labels = Payload(path, bytes, 8, dims[0]);
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

    private static byte[] ReadAllMaybeGzip(string path)
    {
        if (!File.Exists(path))
            throw new DataSetException($"{path}: file not found");
        byte[] raw = File.ReadAllBytes(path);
        if (raw.Length >= 2 && raw[0] == 0x1f && raw[1] == 0x8b)
        {
            try
            {
                using var gzip = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
                using var output = new MemoryStream();
                gzip.CopyTo(output);
                return output.ToArray();
            }
            catch (InvalidDataException e)
            {
                throw new DataSetException($"{path}: the gzip stream is damaged or truncated ({e.Message}); re-install or re-download the file");
            }
        }
        return raw;
    }

    private static int[] ReadHeader(string path, byte[] bytes, int expectedMagic, string kind)
    {
        int rank = expectedMagic & 0xff;
        int headerLength = 4 + 4 * rank;
        if (bytes.Length < 4)
            throw new DataSetException($"{path}: {bytes.Length} bytes is too short for an IDX {kind} header ({headerLength} bytes); the file is truncated");
        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != expectedMagic)
            throw new DataSetException($"{path}: bad magic number 0x{magic:x8}, expected 0x{expectedMagic:x8} for IDX {kind}; is this the right file?");
        if (bytes.Length < headerLength)
            throw new DataSetException($"{path}: {bytes.Length} bytes is too short for an IDX {kind} header ({headerLength} bytes); the file is truncated");
        var dims = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (dims[i] <= 0)
                throw new DataSetException($"{path}: dimension {i} is {dims[i]}; IDX dimensions must be positive");
        }
        return dims;
    }

    private static byte[] Payload(string path, byte[] bytes, int offset, long expected)
    {
        long actual = bytes.Length - offset;
        if (actual != expected)
            throw new DataSetException(actual < expected
                ? $"{path}: truncated: the header promises {expected} data bytes but only {actual} follow"
                : $"{path}: {actual - expected} unexpected bytes after the {expected} data bytes the header promises");
        return bytes.AsSpan(offset).ToArray();
    }
}
