namespace BatchCluster.Cli.Options;

/// <summary>
/// Checks, before any work, that what a command will write can be written: a directory flag does
/// not name a file, a file flag does not name a directory, and the place is writable. Nothing is
/// created by the check (a probe file is made and removed in the nearest directory that exists), so
/// a refused command leaves nothing behind, and a run is never lost to a path that fails at its end.
/// </summary>
public static class OutputPaths
{
    /// <summary>A directory the command will create or write into.</summary>
    public static void CheckDirectory(string flag, string path)
    {
        string full = Path.GetFullPath(path);
        if (File.Exists(full))
            throw new UsageException($"{flag} {path} is a file, not a directory; name a directory (it is created if missing)");
        CheckWritable(flag, path, NearestExisting(flag, path, full));
    }

    /// <summary>A file the command will write (its directory must exist).</summary>
    /// <param name="exampleName">A file name the refusal of a directory suggests.</param>
    public static void CheckFile(string flag, string path, string exampleName = "params.bin")
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new UsageException($"{flag} {path} is a directory; name a file inside it (e.g. {Path.Combine(path, exampleName)})");
        string parent = Path.GetDirectoryName(full) ?? full;
        if (!Directory.Exists(parent))
            throw new UsageException($"{flag}: directory {parent} does not exist; create it first");
        CheckWritable(flag, path, parent);
    }

    private static string NearestExisting(string flag, string path, string full)
    {
        for (string? dir = full; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (Directory.Exists(dir)) return dir;
            if (File.Exists(dir)) throw new UsageException($"{flag} {path}: {dir} is a file, so no directory can be made below it; choose another path");
        }
        throw new UsageException($"{flag} {path}: no part of this path exists");
    }

    private static void CheckWritable(string flag, string path, string directory)
    {
        string probe = Path.Combine(directory, $".batchcluster-write-check-{Environment.ProcessId}");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{flag} {path} is not writable ({directory}: {e.Message.TrimEnd('.')}); choose a directory you can write");
        }
    }
}
