using System.Runtime.InteropServices;

namespace BatchCluster.Core.Training;

/// <summary>
/// All parameters as raw little-endian float32 in the documented flat order (see ParameterLayout),
/// no header: readable with numpy.fromfile(path, dtype='&lt;f4').
/// </summary>
public static class ParameterFile
{
    public static float[] Read(string path, int expectedCount)
    {
        if (!File.Exists(path))
            throw new InvalidDataException($"--init-params: {path} not found");
        long length = new FileInfo(path).Length;
        if (length != (long)expectedCount * sizeof(float))
            throw new InvalidDataException(
                $"--init-params: {path} holds {length} bytes but this model needs {expectedCount} float32 values ({(long)expectedCount * sizeof(float)} bytes); was it exported from the same --model?");
        var values = new float[expectedCount];
        using var stream = File.OpenRead(path);
        stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        if (!BitConverter.IsLittleEndian) ReverseEachValue(values);
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw new InvalidDataException($"--init-params: {path} value {i} is {values[i]}; parameters must be finite");
        return values;
    }

    /// <summary>Writes atomically: a temp file beside the target, flushed to disk, then renamed over it.</summary>
    public static void Write(string path, ReadOnlySpan<float> values)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"--export-params: directory {directory} does not exist; create it first");
        string temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                float[] copy = values.ToArray();
                if (!BitConverter.IsLittleEndian) ReverseEachValue(copy);
                stream.Write(MemoryMarshal.AsBytes(copy.AsSpan()));
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static void ReverseEachValue(float[] values)
    {
        var words = MemoryMarshal.Cast<float, int>(values.AsSpan());
        for (int i = 0; i < words.Length; i++) words[i] = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(words[i]);
    }
}
