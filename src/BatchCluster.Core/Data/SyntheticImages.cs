using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Data;

/// <summary>
/// A deterministic, learnable stand-in for Fashion-MNIST: each class has a fixed random 28×28
/// prototype and every image is its class prototype plus independent noise. For unit tests and for
/// users without the real data; it is only ever used when asked for (--dataset synthetic).
/// </summary>
public static class SyntheticImages
{
    public const int Side = 28;
    public const int ClassCount = 10;

    public static DataSplits Create(int seed, int trainCount = 6000, int validationCount = 1000, int testCount = 1000, int noise = 96)
    {
        byte[][] prototypes = new byte[ClassCount][];
        var rng = SplitMix64.For(seed, stream: -1);
        for (int c = 0; c < ClassCount; c++)
        {
            prototypes[c] = new byte[Side * Side];
            for (int p = 0; p < prototypes[c].Length; p++)
                prototypes[c][p] = (byte)rng.NextInt(256);
        }
        return new DataSplits(
            Make("train", prototypes, SplitMix64.For(seed, 1), trainCount, noise),
            Make("validation", prototypes, SplitMix64.For(seed, 2), validationCount, noise),
            Make("test", prototypes, SplitMix64.For(seed, 3), testCount, noise));
    }

    private static ImageDataSet Make(string name, byte[][] prototypes, SplitMix64 rng, int count, int noise)
    {
        var pixels = new byte[count * Side * Side];
        var labels = new byte[count];
        for (int i = 0; i < count; i++)
        {
            int label = rng.NextInt(ClassCount);
            labels[i] = (byte)label;
            var image = pixels.AsSpan(i * Side * Side, Side * Side);
            for (int p = 0; p < image.Length; p++)
            {
                int value = prototypes[label][p] + rng.NextInt(2 * noise + 1) - noise;
                image[p] = (byte)Math.Clamp(value, 0, 255);
            }
        }
        return new ImageDataSet(name, pixels, labels, Side, Side, ClassCount);
    }
}
