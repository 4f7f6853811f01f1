using System.IO.Compression;
using BatchCluster.Core.Data;

namespace BatchCluster.Core.Tests.Data;

public sealed class IdxFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("idx-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteImages(string name, int count, int side = 28, int? claimedCount = null, int dropBytes = 0)
    {
        var pixels = Enumerable.Range(0, count * side * side).Select(i => (byte)(i % 251)).ToArray();
        string path = Path.Combine(_dir, name);
        IdxFile.Write(path, IdxFile.ImagesMagic, [claimedCount ?? count, side, side], pixels.AsSpan(0, pixels.Length - dropBytes));
        return path;
    }

    private string WriteLabels(string name, byte[] labels)
    {
        string path = Path.Combine(_dir, name);
        IdxFile.Write(path, IdxFile.LabelsMagic, [labels.Length], labels);
        return path;
    }

    /// <summary>A Fashion-MNIST-like directory: 20 training images, 4 test images, the given training labels.</summary>
    private void WriteDataDirectory(byte[] trainLabels)
    {
        WriteImages("train-images-idx3-ubyte", 20);
        WriteLabels("train-labels-idx1-ubyte", trainLabels);
        WriteImages("t10k-images-idx3-ubyte", 4);
        WriteLabels("t10k-labels-idx1-ubyte", new byte[4]);
    }

    private static void Gzip(string source, string target)
    {
        using var input = File.OpenRead(source);
        using var output = new GZipStream(File.Create(target), CompressionLevel.Fastest);
        input.CopyTo(output);
    }

    [Fact]
    public void Reads_raw_and_gzip_images_identically()
    {
        string raw = WriteImages("train-images-idx3-ubyte", 3);
        Gzip(raw, raw + ".gz");
        var a = IdxFile.ReadImages(raw);
        var b = IdxFile.ReadImages(raw + ".gz");
        Assert.Equal((3, 28, 28), (a.Count, a.Height, a.Width));
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal((byte)(784 % 251), a.Pixels[784]);
    }

    [Fact]
    public void Reads_labels()
    {
        string path = WriteLabels("labels", [0, 9, 3]);
        Assert.Equal(new byte[] { 0, 9, 3 }, IdxFile.ReadLabels(path, 10));
    }

    [Fact]
    public void Bad_magic_is_named()
    {
        string path = WriteLabels("labels", [1, 2]);
        var e = Assert.Throws<DataSetException>(() => IdxFile.ReadImages(path));
        Assert.Contains("bad magic number 0x00000801", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Truncated_data_is_named()
    {
        string path = WriteImages("short", 2, dropBytes: 10);
        var e = Assert.Throws<DataSetException>(() => IdxFile.ReadImages(path));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("1568", e.Message);
    }

    [Fact]
    public void Truncated_header_is_named()
    {
        string path = Path.Combine(_dir, "tiny");
        File.WriteAllBytes(path, [0, 0, 8, 1, 0]);
        Assert.Contains("too short", Assert.Throws<DataSetException>(() => IdxFile.ReadLabels(path, 10)).Message);
    }

    [Fact]
    public void Damaged_gzip_is_named()
    {
        string raw = WriteImages("img", 4);
        Gzip(raw, raw + ".gz");
        var bytes = File.ReadAllBytes(raw + ".gz");
        File.WriteAllBytes(raw + ".gz", bytes.AsSpan(0, bytes.Length / 2).ToArray());
        // A cut gzip stream either fails to inflate or inflates to fewer bytes than the header promises.
        var e = Assert.Throws<DataSetException>(() => IdxFile.ReadImages(raw + ".gz"));
        Assert.Contains(raw + ".gz", e.Message);
        Assert.Matches("truncated|gzip", e.Message);
    }

    [Fact]
    public void Trailing_bytes_are_named()
    {
        string path = WriteImages("long", 2, claimedCount: 1);
        Assert.Contains("unexpected bytes", Assert.Throws<DataSetException>(() => IdxFile.ReadImages(path)).Message);
    }

    [Fact]
    public void Label_out_of_range_is_named()
    {
        string path = WriteLabels("labels", [0, 12]);
        var e = Assert.Throws<DataSetException>(() => IdxFile.ReadLabels(path, 10));
        Assert.Contains("label 12 at index 1 is out of range 0..9", e.Message);
    }

    [Fact]
    public void Missing_directory_says_how_to_install()
    {
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(Path.Combine(_dir, "absent")));
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
        Assert.Contains(Path.Combine(_dir, "absent"), e.Message);
    }

    [Fact]
    public void Missing_file_names_the_path_and_the_package()
    {
        WriteImages("train-images-idx3-ubyte", 20);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(_dir, validationSize: 5));
        Assert.Contains(Path.Combine(_dir, "train-labels-idx1-ubyte.gz"), e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
    }

    [Fact]
    public void Image_and_label_count_mismatch_is_named()
    {
        WriteDataDirectory(trainLabels: new byte[19]);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(_dir, validationSize: 5));
        Assert.Contains("20 images but its labels file holds 19 labels", e.Message);
    }

    [Fact]
    public void Loads_a_directory_and_holds_out_the_tail_for_validation()
    {
        WriteDataDirectory(trainLabels: Enumerable.Range(0, 20).Select(i => (byte)(i % 10)).ToArray());
        var splits = FashionMnist.Load(_dir, validationSize: 5);
        Assert.Equal((15, 5, 4), (splits.Train.Count, splits.Validation.Count, splits.Test.Count));
        Assert.Equal(15 % 10, splits.Validation.Labels[0]);
        Assert.Equal(IdxFile.ReadImages(Path.Combine(_dir, "train-images-idx3-ubyte")).Pixels.AsSpan(15 * 784, 784).ToArray(),
            splits.Validation.Image(0).ToArray());
    }

    [Fact]
    public void Validation_larger_than_training_is_refused()
    {
        WriteDataDirectory(trainLabels: new byte[20]);
        Assert.Contains("--validation-size", Assert.Throws<DataSetException>(() => FashionMnist.Load(_dir, validationSize: 20)).Message);
    }

    /// <summary>
    /// The audit's gzip bomb: a small .gz whose header declares a little data and then inflates on
    /// (4 GB RSS before). Only the declared bytes and a bounded look beyond them are ever read.
    /// </summary>
    [Fact]
    public void A_gzip_bomb_is_refused_without_inflating_it()
    {
        string path = Path.Combine(_dir, "bomb.gz");
        using (var gzip = new System.IO.Compression.GZipStream(File.Create(path), System.IO.Compression.CompressionLevel.SmallestSize))
        {
            var header = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, IdxFile.ImagesMagic);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), 1);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), 28);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), 28);
            gzip.Write(header);
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 512; i++) gzip.Write(zeros); // 512 MiB of zeros behind one declared image
        }
        Assert.True(new FileInfo(path).Length < 2 << 20);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DataSetException>(() => IdxFile.ReadImages(path));
        Assert.Contains("more than 1 MiB of unexpected bytes after the 784 data bytes", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, "read far beyond what the header declares");
    }

    [Fact]
    public void A_header_declaring_more_than_a_gibibyte_is_refused_before_allocating()
    {
        string path = Path.Combine(_dir, "huge");
        IdxFile.Write(path, IdxFile.ImagesMagic, [100_000_000, 28, 28], []);
        var e = Assert.Throws<DataSetException>(() => IdxFile.ReadImages(path));
        Assert.Contains("declares more than 1 GiB", e.Message);
    }

    /// <summary>The audit gave test images of another shape: workers failed on every evaluation. Now loading says so.</summary>
    [Fact]
    public void Images_of_another_shape_are_refused_at_load()
    {
        WriteDataDirectory([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
        WriteImages("t10k-images-idx3-ubyte", 4, side: 32);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(_dir, validationSize: 5));
        Assert.Contains("the test images are 32×32, not the 28×28", e.Message);
    }
}
