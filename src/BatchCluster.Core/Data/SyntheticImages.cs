using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Data;

/// <summary>
/// A deterministic, learnable stand-in for Fashion-MNIST: a shared random 28×28 base image, a small
/// class-specific offset per pixel (±<c>classContrast</c>), and strong independent noise per image
/// (±<c>noise</c>). With the defaults the MLP (batch 32, lr 0.1) reaches ~0.58 validation
/// accuracy after one epoch and ~0.97 after five: learnable, not trivial. For unit tests and for users without the real data; it is only ever used
/// when asked for (--dataset synthetic).
/// </summary>
public static class SyntheticImages
{
    public const int Side = 28;
    public const int ClassCount = 10;

    public static DataSplits Create(int seed, int trainCount = 6000, int validationCount = 1000, int testCount = 1000,
        int classContrast = 16, int noise = 96)
    {
        var rng = SplitMix64.For(seed, stream: -1);
        var baseImage = new int[Side * Side];
        for (int p = 0; p < baseImage.Length; p++) baseImage[p] = rng.NextInt(128);
        byte[][] prototypes = new byte[ClassCount][];
        for (int c = 0; c < ClassCount; c++)
        {
            prototypes[c] = new byte[Side * Side];
            for (int p = 0; p < prototypes[c].Length; p++)
                prototypes[c][p] = (byte)Math.Clamp(baseImage[p] + rng.NextInt(2 * classContrast + 1) - classContrast, 0, 255);
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
