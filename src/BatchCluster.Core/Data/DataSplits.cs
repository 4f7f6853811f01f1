namespace BatchCluster.Core.Data;

/// <summary>
/// The three sets of a run. Validation is held out of the training file (never trained on);
/// Test is the separate test file, reported on its own.
/// </summary>
public sealed record DataSplits(ImageDataSet Train, ImageDataSet Validation, ImageDataSet Test)
{
    /// <summary>Holds the last <paramref name="validationSize"/> images of <paramref name="fullTrain"/> out as validation.</summary>
    public static DataSplits HoldOutTail(ImageDataSet fullTrain, ImageDataSet test, int validationSize)
    {
        if (validationSize < 0 || validationSize >= fullTrain.Count)
            throw new DataSetException(
                $"validation size {validationSize} must be at least 0 and less than the {fullTrain.Count} training images; choose a smaller --validation-size");
        int trainCount = fullTrain.Count - validationSize;
        return new DataSplits(
            fullTrain.Slice("train", 0, trainCount),
            fullTrain.Slice("validation", trainCount, validationSize),
            test);
    }
}
