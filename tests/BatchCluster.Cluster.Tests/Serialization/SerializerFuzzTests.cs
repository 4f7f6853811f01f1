using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace BatchCluster.Cluster.Tests.Serialization;

/// <summary>
/// Bytes from the network, truncated, corrupted or made up: reading them either gives a message or
/// throws <see cref="SerializationException"/> (Akka then drops that one message and keeps the
/// connection; any other exception tears the connection down), and never allocates much more than
/// the message's own size, whatever lengths it declares.
/// </summary>
public sealed class SerializerFuzzTests(ConfiguredSerialization configured) : IClassFixture<ConfiguredSerialization>
{
    private const int Seed = 20261128;

    private TrainingMessageSerializer Serializer => configured.Serializer;

    /// <summary>Reads <paramref name="bytes"/>; asserts the outcome is a message or a SerializationException, and the allocation is bounded.</summary>
    private void ReadsSafely(byte[] bytes, string manifest, ref int refused)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            Serializer.FromBinary(bytes, manifest);
        }
        catch (SerializationException)
        {
            refused++;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // The reader's own buffers, strings (UTF-16: 2 bytes a byte) and arrays sized by what is really there.
        long bound = 8L * bytes.Length + 64 * 1024;
        Assert.True(allocated <= bound, $"'{manifest}' of {bytes.Length} bytes allocated {allocated} bytes (bound {bound})");
    }

    [Theory]
    [MemberData(nameof(TrainingMessageSerializerTests.Messages), MemberType = typeof(TrainingMessageSerializerTests))]
    public void Truncated_and_corrupted_messages_are_refused_or_read(ITrainingMessage message)
    {
        string manifest = Serializer.Manifest(message);
        byte[] good = Serializer.ToBinary(message);
        int refused = 0;
        for (int length = 0; length < good.Length; length += Math.Max(1, good.Length / 200)) ReadsSafely(good[..length], manifest, ref refused);
        var random = new Random(Seed);
        for (int round = 0; round < 300; round++)
        {
            var bad = (byte[])good.Clone();
            int flips = 1 + random.Next(8);
            for (int f = 0; f < flips; f++) bad[random.Next(bad.Length)] = (byte)random.Next(256);
            ReadsSafely(bad, manifest, ref refused);
        }
        Assert.True(refused > 0); // the corruption was noticed at least sometimes
    }

    [Fact]
    public void Random_bytes_under_every_manifest_are_refused_or_read()
    {
        string[] manifests = ["rw", "wa", "wj", "wr", "re", "cs", "sc", "ev", "ed", "wl", "sf", "ef", "ts", "tc", "zz", ""];
        var random = new Random(Seed);
        int refused = 0;
        foreach (string manifest in manifests)
            for (int i = 0; i < 200; i++)
            {
                var bytes = new byte[random.Next(0, 256)];
                random.NextBytes(bytes);
                ReadsSafely(bytes, manifest, ref refused);
            }
        Assert.True(refused > manifests.Length * 150);
    }

    /// <summary>Lengths that promise far more than the message holds: refused before anything of that size exists.</summary>
    [Fact]
    public void Forged_lengths_allocate_nothing_of_their_size()
    {
        int refused = 0;
        var w = new MemoryStream();
        using (var writer = new BinaryWriter(w))
        {
            writer.Write(9L);             // transfer id
            writer.Write(int.MaxValue);   // chunk index
            writer.Write(250_000_000);    // a float array of 1 GB, with nothing behind it
        }
        ReadsSafely(w.ToArray(), "tc", ref refused);

        var nested = new MemoryStream();
        using (var writer = new BinaryWriter(nested))
            for (int depth = 0; depth < 100_000; depth++)
            {
                writer.Write(1L); writer.Write(250_000_000); writer.Write(4000); writer.Write("ts"); // a transfer wrapping a transfer …
            }
        ReadsSafely(nested.ToArray(), "ts", ref refused); // once recursion as deep as the message (a stack overflow)
        Assert.Equal(2, refused);
    }
}
