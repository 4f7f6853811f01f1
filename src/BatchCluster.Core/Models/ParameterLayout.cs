using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace BatchCluster.Core.Models;

/// <summary>
/// Where each parameter tensor sits in the flat float32 buffer: TorchSharp's parameters() order,
/// each tensor row-major. This order is the wire and file format of parameters and gradients.
/// </summary>
public sealed record ParameterLayout(IReadOnlyList<ParameterLayout.Entry> Entries)
{
    public sealed record Entry(string Name, long[] Shape, int Offset, int Count);

    public int TotalCount => Entries.Count == 0 ? 0 : Entries[^1].Offset + Entries[^1].Count;

    /// <summary>Each tensor's number of values, in the flat order.</summary>
    public IReadOnlyList<int> Sizes => Entries.Select(e => e.Count).ToList();

    internal static ParameterLayout Of(nn.Module module)
    {
        var entries = new List<Entry>();
        int offset = 0;
        foreach (var (name, p) in module.named_parameters())
        {
            int count = checked((int)p.numel());
            entries.Add(new Entry(name, p.shape, offset, count));
            offset += count;
        }
        return new ParameterLayout(entries);
    }

    /// <summary>Copies every parameter into <paramref name="flat"/> (one memcpy per tensor).</summary>
    internal static void CopyOut(nn.Module module, Span<float> flat)
    {
        int offset = 0;
        foreach (var p in module.parameters())
        {
            var source = FloatsOf(p);
            source.CopyTo(flat.Slice(offset, source.Length));
            offset += source.Length;
        }
    }

    internal static void CopyIn(nn.Module module, ReadOnlySpan<float> flat)
    {
        int offset = 0;
        using (no_grad())
        {
            foreach (var p in module.parameters())
            {
                var target = FloatsOf(p);
                flat.Slice(offset, target.Length).CopyTo(target);
                offset += target.Length;
            }
        }
        if (offset != flat.Length)
            throw new ArgumentException($"parameter buffer holds {flat.Length} values but the model has {offset}");
    }

    /// <summary>A span over a contiguous CPU float32 tensor's native memory (no copy).</summary>
    internal static Span<float> FloatsOf(Tensor t)
    {
        if (t.dtype != ScalarType.Float32 || !t.is_contiguous() || t.device_type != TorchSharp.DeviceType.CPU)
            throw new InvalidOperationException("expected a contiguous float32 CPU tensor");
        return MemoryMarshal.Cast<byte, float>(t.bytes);
    }
}
