namespace BatchCluster.Core.Data;

/// <summary>
/// Locates and loads Fashion-MNIST (or MNIST: same file names and format) from a directory.
/// The default directory is where Debian's <c>dataset-fashion-mnist</c> package installs it.
/// </summary>
public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const int DefaultValidationSize = 5000;
    public const int ClassCount = 10;
    public const int ImageSide = 28;

    public static DataSplits Load(string directory, int validationSize = DefaultValidationSize)
    {
        if (!Directory.Exists(directory))
            throw new DataSetException(
                $"Fashion-MNIST directory {directory} does not exist; install the data set with 'apt-get install dataset-fashion-mnist' or point --data-dir at a directory holding the IDX files");
        var trainImages = IdxFile.ReadImages(Locate(directory, "train-images-idx3-ubyte"));
        var trainLabels = IdxFile.ReadLabels(Locate(directory, "train-labels-idx1-ubyte"), ClassCount);
        var testImages = IdxFile.ReadImages(Locate(directory, "t10k-images-idx3-ubyte"));
        var testLabels = IdxFile.ReadLabels(Locate(directory, "t10k-labels-idx1-ubyte"), ClassCount);
        foreach (var (name, images) in new[] { ("training", trainImages), ("test", testImages) })
            if (images.Height != ImageSide || images.Width != ImageSide)
                throw new DataSetException(
                    $"{directory}: the {name} images are {images.Height}×{images.Width}, not the {ImageSide}×{ImageSide} of Fashion-MNIST that every model here takes; point --data-dir at Fashion-MNIST (or MNIST) files");
        var train = Combine("train-file", trainImages, trainLabels, directory);
        var test = Combine("test", testImages, testLabels, directory);
        return DataSplits.HoldOutTail(train, test, validationSize);
    }

    private static ImageDataSet Combine(string name, IdxFile.Images images, byte[] labels, string directory)
    {
        if (images.Count != labels.Length)
            throw new DataSetException(
                $"{directory}: the {name} images file holds {images.Count} images but its labels file holds {labels.Length} labels; the files do not belong together");
        return new ImageDataSet(name, images.Pixels, labels, images.Height, images.Width, ClassCount);
    }

    /// <summary>Accepts the gzip file (as Debian ships it) or an uncompressed one.</summary>
    private static string Locate(string directory, string stem)
    {
        string gz = Path.Combine(directory, stem + ".gz");
        if (File.Exists(gz)) return gz;
        string raw = Path.Combine(directory, stem);
        if (File.Exists(raw)) return raw;
        throw new DataSetException(
            $"{gz} not found (nor {raw}); install the data set with 'apt-get install dataset-fashion-mnist' or point --data-dir at a directory holding the IDX files");
    }
}
