namespace BatchCluster.Core.Training;

/// <summary>Free space where a file is (or would be) written, for failure messages.</summary>
public static class FreeSpace
{
    /// <summary>"N MB free on the file system of DIR", or what could not be learned.</summary>
    public static string Describe(string path)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        try
        {
            long free = new DriveInfo(directory).AvailableFreeSpace;
            return $"{free / (1024.0 * 1024.0):F1} MB free on the file system of {directory}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return $"the free space of {directory} is unknown ({e.Message})";
        }
    }
}
