namespace BatchCluster.Analysis.Logs;

/// <summary>Turns the paths a user gives (event log files, or directories holding them) into log files.</summary>
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
                found.AddRange(Directory.EnumerateFiles(path, LogFileName, SearchOption.AllDirectories).Select(Path.GetFullPath).Order(StringComparer.Ordinal));
            else throw new FileNotFoundException($"'{path}' is neither an event log nor a directory; give a runs directory or events.clef files", path);
        }
        var distinct = found.Distinct().ToList();
        if (distinct.Count == 0)
            throw new FileNotFoundException($"no {LogFileName} under {string.Join(", ", paths)}; train or sweep with --runs-dir there first");
        return distinct;
    }
}
