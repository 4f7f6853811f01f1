using BatchCluster.Cli.Options;

namespace BatchCluster.Cli.Processes;

/// <summary>
/// A run of cluster nodes (child processes of this tool) to its end, for the benchmarks: a fresh
/// runs directory, the nodes the caller starts in it (the coordinator first, with --run-id bench),
/// the coordinator's exit awaited and its event log read; then every node is stopped and the
/// directory removed, whatever happened.
/// </summary>
public static class NodeRun
{
    /// <param name="what">Names the run in the error when its coordinator fails ("bench links: mlp B 256 …").</param>
    /// <param name="start">Starts the nodes with the given runs directory, adding each to the list as soon as it runs.</param>
    /// <param name="read">Reads the coordinator's event log (its path).</param>
    public static async Task<T> ToEndAsync<T>(string what, Action<string, List<ChildProcess>> start, Func<string, T> read, TimeSpan timeout,
        CancellationToken cancellation)
    {
        string runsDir = Directory.CreateTempSubdirectory("batchcluster-nodes-").FullName;
        var nodes = new List<ChildProcess>();
        try
        {
            start(runsDir, nodes);
            int exit = await nodes[0].WaitForExitAsync(timeout, cancellation);
            if (exit != 0) throw new CommandFailedException($"{what}: the coordinator exited with {exit}: {string.Join(" | ", nodes[0].Output.TakeLast(3))}");
            return read(Path.Combine(runsDir, "bench", "events.clef"));
        }
        finally
        {
            foreach (var node in nodes) node.Dispose();
            Directory.Delete(runsDir, recursive: true);
        }
    }
}
