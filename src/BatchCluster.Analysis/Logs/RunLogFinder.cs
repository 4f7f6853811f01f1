namespace BatchCluster.Analysis.Logs;

/// <summary>
/// Turns the paths a user gives (event log files, or directories holding them) into log files.
/// Directories whose names start with '.' are not searched: a sweep keeps superseded attempts in
/// &lt;runs-dir&gt;/.superseded/, which should not be counted twice.
/// </summary>
public static class RunLogFinder
{
    public const string LogFileName = "events.clef";

    /// <exception cref="FileNotFoundException">A path does not exist, or no event log was found under the paths.</exception>
    public static IReadOnlyList<string> Find(IEnumerable<string> paths)
    {
        var found = new List<string>();
        foreach (string path in paths)
        {
            if (File.Exists(path)) found.Add(Path.GetFullPath(path));
            else if (Directory.Exists(path))
                found.AddRange(Directory.EnumerateFiles(path, LogFileName, SearchOption.AllDirectories)
                    .Where(file => !IsUnderHiddenDirectory(path, file)).Select(Path.GetFullPath).Order(StringComparer.Ordinal));
            else throw new FileNotFoundException($"'{path}' is neither an event log nor a directory; give a runs directory or events.clef files", path);
        }
        var distinct = found.Distinct().ToList();
        if (distinct.Count == 0)
            throw new FileNotFoundException($"no {LogFileName} under {string.Join(", ", paths)}; train or sweep with --runs-dir there first");
        return distinct;
    }

    private static bool IsUnderHiddenDirectory(string root, string file) =>
        Path.GetRelativePath(root, Path.GetDirectoryName(file)!).Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.') && part is not "." and not "..");
}
