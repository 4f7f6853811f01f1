namespace BatchCluster.Core.Data;

/// <summary>A data file is missing or malformed. The message names the file, what was wrong and the fix.</summary>
public sealed class DataSetException(string message) : Exception(message);
