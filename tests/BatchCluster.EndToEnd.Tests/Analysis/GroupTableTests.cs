using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.EndToEnd.Tests.Analysis;

public sealed class GroupTableTests
{
    private static RunRow Run(string id, int batch, double finalVal, long? stepsToTarget) => new(
        id, RunStatus.Completed, "actors", "mlp(256)", 1, batch, null, "none", 0.05, 100, 1, finalVal, finalVal, finalVal - 0.01,
        finalVal + 0.01, 0.01, stepsToTarget, stepsToTarget * batch, double.NaN, 1000, 1, 1, 0, 500, double.NaN, 0);

    [Fact]
    public void Runs_differing_only_in_seed_become_one_row_with_mean_and_sample_deviation()
    {
        string table = GroupTable.Markdown([Run("s1", 64, 0.86, 300), Run("s2", 64, 0.88, null), Run("s3", 64, 0.87, 500), Run("b", 128, 0.85, 200)]);
        var rows = table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(2).ToList();
        Assert.Equal(2, rows.Count);
        var cells = rows[0].Trim('|').Split(" | ").Select(c => c.Trim()).ToArray();
        Assert.Equal(("64", "3"), (cells[1], cells[2]));
        Assert.Equal("87.00 ± 1.00", cells[3]); // final val: mean 0.87, sample sd 0.01
        Assert.Equal("400 ± 141 (2/3)", cells[8]); // steps to target: two of the three runs reached it
        var single = rows[1].Trim('|').Split(" | ").Select(c => c.Trim()).ToArray();
        Assert.Equal(("128", "1", "85.00"), (single[1], single[2], single[3])); // one run: no spread
    }

    [Fact]
    public void Multi_node_runs_form_series_of_their_own_by_host_count()
    {
        var local = Run("local", 64, 0.86, 300);
        var nodes = local with { RunId = "nodes", Engine = "cluster", Workers = 2 };
        Assert.Equal("mlp(256), 1 worker, lr none", local.SeriesKey);
        Assert.Equal("mlp(256), 2 worker nodes, lr none", nodes.SeriesKey);
        Assert.Equal("mlp(256), 1 worker node, lr none", (nodes with { Workers = 1 }).SeriesKey);
        Assert.Equal(2, GroupTable.Groups([local, nodes, nodes with { RunId = "nodes-seed-2" }]).Count);
    }
}
