namespace BatchCluster.Core.Data;

/// <summary>
/// Grey-scale images with class labels, held as raw bytes (one byte per pixel, row-major per image).
/// Workers convert to floats per micro-batch (x / 255), so the whole set stays 1 byte per pixel.
/// </summary>
public sealed class ImageDataSet
{
    public ImageDataSet(string name, byte[] pixels, byte[] labels, int height, int width, int classCount)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"image size {height}x{width} must be positive");
        if (pixels.Length != labels.Length * height * width)
            throw new ArgumentException($"{name}: {pixels.Length} pixels do not make {labels.Length} images of {height}x{width}");
        Name = name;
        Pixels = pixels;
        Labels = labels;
        Height = height;
        Width = width;
        ClassCount = classCount;
    }

    public string Name { get; }
    public byte[] Pixels { get; }
    public byte[] Labels { get; }
    public int Height { get; }
    public int Width { get; }
    public int ClassCount { get; }
    public int Count => Labels.Length;
    public int PixelsPerImage => Height * Width;

    public ReadOnlySpan<byte> Image(int index) => Pixels.AsSpan(index * PixelsPerImage, PixelsPerImage);

    /// <summary>A copy of images [start, start + count).</summary>
    public ImageDataSet Slice(string name, int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(count), $"slice [{start}, {start + count}) is outside {Name}'s {Count} images");
        return new ImageDataSet(
            name,
            Pixels.AsSpan(start * PixelsPerImage, count * PixelsPerImage).ToArray(),
            Labels.AsSpan(start, count).ToArray(),
            Height, Width, ClassCount);
    }
}
