namespace BatchCluster.Core.Data;

/// <summary>Names one of the three sets of <see cref="DataSplits"/>.</summary>
public enum DataSplit { Train, Validation, Test }

public static class DataSplitExtensions
{
    public static ImageDataSet Of(this DataSplits splits, DataSplit split) => split switch
    {
        DataSplit.Train => splits.Train,
        DataSplit.Validation => splits.Validation,
        DataSplit.Test => splits.Test,
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, "unknown split"),
    };

    public static string LogName(this DataSplit split) => split.ToString().ToLowerInvariant();
}
