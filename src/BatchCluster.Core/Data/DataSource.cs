namespace BatchCluster.Core.Data;

/// <summary>Loads a run's data set by name; a missing or bad real data set is an error, never replaced by synthetic data.</summary>
public static class DataSource
{
    public static readonly string[] Names = ["fashion-mnist", "synthetic"];

    public static DataSplits Load(string dataset, string dataDirectory, int validationSize, long seed) => dataset switch
    {
        "synthetic" => SyntheticImages.Create(checked((int)(seed & 0x7fffffff))),
        "fashion-mnist" => FashionMnist.Load(dataDirectory, validationSize),
        _ => throw new DataSetException($"unknown data set '{dataset}'; use one of {string.Join(", ", Names)}"),
    };
}
