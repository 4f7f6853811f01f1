using BatchCluster.Cluster.Links;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Tests.Links;

/// <summary>The frame header is checked field by field before a payload byte is read; bf16 rounds to nearest even.</summary>
public class FrameHeaderTests
{
    private const ulong Run = 0xABCDEF;
    private static readonly FrameHeader Gradient = new(FrameKind.GradientSum, TransferPrecision.Fp32, Run, Step: 7, Version: 7, Slot: 2, Count: 1000, Checksum: 99);

    private static byte[] Bytes(FrameHeader header)
    {
        var bytes = new byte[FrameHeader.Size];
        header.Write(bytes);
        return bytes;
    }

    [Fact]
    public void A_header_reads_back_as_written()
    {
        Assert.Equal(Gradient, FrameHeader.Read(Bytes(Gradient), FrameKind.GradientSum, Run, 1000, TransferPrecision.Fp32));
        Assert.Equal(4000, Gradient.PayloadBytes);
        Assert.Equal(2000, (Gradient with { Precision = TransferPrecision.Bf16 }).PayloadBytes);
    }

    [Theory]
    [InlineData("kind", "a GradientSum frame where a Parameters frame was due")]
    [InlineData("run", "another run")]
    [InlineData("precision", "a Bf16 frame in a Fp32 run")]
    [InlineData("count", "1001 values declared where the model has 1000")]
    [InlineData("negative", "-5 values declared")]
    [InlineData("magic", "bad magic")]
    public void Anything_but_the_expected_frame_is_refused_before_its_payload(string fault, string message)
    {
        var (header, expectedKind) = fault switch
        {
            "kind" => (Gradient, FrameKind.Parameters),
            "run" => (Gradient with { RunTag = Run + 1 }, FrameKind.GradientSum),
            "precision" => (Gradient with { Precision = TransferPrecision.Bf16 }, FrameKind.GradientSum),
            "count" => (Gradient with { Count = 1001 }, FrameKind.GradientSum),
            "negative" => (Gradient with { Count = -5 }, FrameKind.GradientSum),
            _ => (Gradient, FrameKind.GradientSum),
        };
        var bytes = Bytes(header);
        if (fault == "magic") bytes[0] ^= 0xFF;
        var e = Assert.Throws<InvalidDataException>(() => FrameHeader.Read(bytes, expectedKind, Run, 1000, TransferPrecision.Fp32));
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(FrameHeader.MaxMessageBytes + 1)]
    public void A_message_frame_declares_one_byte_to_the_limit_before_anything_is_allocated(int count)
    {
        var message = new FrameHeader(FrameKind.Message, TransferPrecision.Fp32, Run, 0, 0, -1, count, 0);
        var e = Assert.Throws<InvalidDataException>(() => FrameHeader.Read(Bytes(message), FrameKind.Message, Run, 1000, TransferPrecision.Fp32));
        Assert.Contains($"a message frame declares {count} bytes", e.Message);
        var largest = message with { Count = FrameHeader.MaxMessageBytes };
        Assert.Equal(FrameHeader.MaxMessageBytes, FrameHeader.Read(Bytes(largest), FrameKind.Message, Run, 1000, TransferPrecision.Fp32).PayloadBytes);
    }

    [Fact]
    public void Fp32_payloads_are_bitwise_the_values()
    {
        float[] values = [1.5f, -0f, float.Epsilon, float.MaxValue, 3.14159265f];
        var bytes = new byte[values.Length * 4];
        Assert.Equal(bytes.Length, FramePayload.Encode(values, TransferPrecision.Fp32, bytes));
        var back = new float[values.Length];
        FramePayload.Decode(bytes, TransferPrecision.Fp32, back);
        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), back.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void Bf16_rounds_to_nearest_even_and_keeps_nan_and_infinity()
    {
        // 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties go to the even one, 1.
        Assert.Equal(1f, FramePayload.FromBf16(FramePayload.ToBf16(1f + MathF.Pow(2, -8))));
        // 1 + 3·2^-8 lies between 1 + 2^-7 (odd) and 1 + 2^-6 (even): ties to 1 + 2^-6.
        Assert.Equal(1f + MathF.Pow(2, -6), FramePayload.FromBf16(FramePayload.ToBf16(1f + 3 * MathF.Pow(2, -8))));
        Assert.True(float.IsNaN(FramePayload.FromBf16(FramePayload.ToBf16(float.NaN))));
        Assert.Equal(float.PositiveInfinity, FramePayload.FromBf16(FramePayload.ToBf16(float.PositiveInfinity)));
    }

    [Fact]
    public void Bf16_keeps_every_value_within_half_a_unit_in_its_last_bit()
    {
        var random = new Random(5);
        var values = Enumerable.Range(0, 100_000).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-20, 20)))).ToArray();
        var bytes = new byte[values.Length * 2];
        FramePayload.Encode(values, TransferPrecision.Bf16, bytes);
        var back = new float[values.Length];
        FramePayload.Decode(bytes, TransferPrecision.Bf16, back);
        // bf16 keeps 8 significant bits: rounding to nearest errs by at most half a unit in the 8th bit, 2^-8 of the value.
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(back[i] - values[i]) <= Math.Abs(values[i]) * Math.Pow(2, -8), $"{values[i]} became {back[i]}");
    }

    [Fact]
    public void The_vectorised_bf16_conversion_equals_the_scalar_rule_bit_for_bit()
    {
        var random = new Random(11);
        var values = Enumerable.Range(0, 1000).Select(i => i switch
        {
            0 => float.NaN, 1 => float.NegativeInfinity, 2 => -0f, 3 => float.Epsilon, 4 => float.MaxValue,
            5 => BitConverter.UInt32BitsToSingle(0x3F808000), // an exact tie
            _ => BitConverter.Int32BitsToSingle(random.Next()) * (i % 2 == 0 ? 1 : -1),
        }).ToArray();
        var bytes = new byte[values.Length * 2];
        FramePayload.Encode(values, TransferPrecision.Bf16, bytes);
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes).ToArray();
        Assert.Equal(values.Select(FramePayload.ToBf16), halves);
        var back = new float[values.Length];
        FramePayload.Decode(bytes, TransferPrecision.Bf16, back);
        Assert.Equal(halves.Select(h => BitConverter.SingleToUInt32Bits(FramePayload.FromBf16(h))), back.Select(BitConverter.SingleToUInt32Bits));
    }
}
