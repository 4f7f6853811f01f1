using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Links;

/// <summary>How tensors become payload bytes and back: raw little-endian fp32, or bf16 (the upper half, rounded to nearest even).</summary>
public static class FramePayload
{
    static FramePayload()
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the data plane sends floats as they lie in memory: a little-endian CPU is required");
    }

    public static ulong Checksum(ReadOnlySpan<byte> payload) => XxHash3.HashToUInt64(payload);

    /// <summary>Writes <paramref name="values"/> in <paramref name="precision"/>; returns the bytes written.</summary>
    public static int Encode(ReadOnlySpan<float> values, TransferPrecision precision, Span<byte> destination)
    {
        if (precision == TransferPrecision.Fp32)
        {
            var bytes = MemoryMarshal.AsBytes(values);
            bytes.CopyTo(destination);
            return bytes.Length;
        }
        var halves = MemoryMarshal.Cast<byte, ushort>(destination[..(values.Length * 2)]);
        var bits = MemoryMarshal.Cast<float, uint>(values);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            // The scalar rule below, 16 values at a time (the conversion is on the critical path of every step).
            var half = Vector256.Create(0x7FFFu);
            var one = Vector256.Create(1u);
            var quiet = Vector256.Create(0x40u);
            for (; i <= bits.Length - 16; i += 16)
            {
                var lo = Vector256.Create(bits.Slice(i, 8));
                var hi = Vector256.Create(bits.Slice(i + 8, 8));
                Vector256.Narrow(RoundToBf16(lo, half, one, quiet), RoundToBf16(hi, half, one, quiet)).CopyTo(halves.Slice(i, 16));
            }
        }
        for (; i < values.Length; i++) halves[i] = ToBf16(values[i]);
        return values.Length * 2;
    }

    private static Vector256<uint> RoundToBf16(Vector256<uint> bits, Vector256<uint> half, Vector256<uint> one, Vector256<uint> quiet)
    {
        var rounded = (bits + half + ((bits >> 16) & one)) >> 16;
        var isNaN = ~Vector256.Equals(bits.AsSingle(), bits.AsSingle()).AsUInt32();
        return Vector256.ConditionalSelect(isNaN, (bits >> 16) | quiet, rounded);
    }

    public static void Decode(ReadOnlySpan<byte> payload, TransferPrecision precision, Span<float> destination)
    {
        if (precision == TransferPrecision.Fp32)
        {
            payload.CopyTo(MemoryMarshal.AsBytes(destination));
            return;
        }
        var halves = MemoryMarshal.Cast<byte, ushort>(payload);
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= halves.Length - 16; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Create(halves.Slice(i, 16)));
                (lo << 16).CopyTo(bits.Slice(i, 8));
                (hi << 16).CopyTo(bits.Slice(i + 8, 8));
            }
        }
        for (; i < halves.Length; i++) bits[i] = (uint)halves[i] << 16;
    }

    /// <summary>fp32 → bf16, round to nearest, ties to even; NaN stays NaN.</summary>
    public static ushort ToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40); // keep it a (quiet) NaN
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
    }

    public static float FromBf16(ushort half) => BitConverter.UInt32BitsToSingle((uint)half << 16);
}
