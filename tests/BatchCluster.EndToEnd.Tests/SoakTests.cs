using System.Globalization;
using System.Text.RegularExpressions;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// The soak run at CI size (scripts/soak.sh runs 20,000 steps): a coordinator and two worker
/// processes, 3,000 steps, every process's resident memory sampled. Memory must grow less than 10 %
/// from step 100 to the end. Step time is measured and reported too, but not asserted here: other
/// test assemblies may share the two cores with this run, which moves step times by more than 10 %.
/// </summary>
public sealed class SoakTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("soak-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Memory_does_not_grow_over_a_long_multi_process_run()
    {
        var outcome = CliProcess.Run(TimeSpan.FromMinutes(5), "soak", "--steps", "3000", "--out", _dir);
        var match = Regex.Match(outcome.StdOut,
            @"soak: 3000 steps, memory growth coordinator (?<c>[+-]\d+\.\d) %, workers (?<w>[+-]\d+\.\d) % \(max\), step time (?<t>[+-]\d+\.\d) %");
        Assert.True(match.Success, outcome.StdOut + outcome.StdErr);
        double Growth(string name) => double.Parse(match.Groups[name].Value, CultureInfo.InvariantCulture);
        Assert.True(Growth("c") < 10, $"coordinator memory grew {Growth("c")} %");
        Assert.True(Growth("w") < 10, $"worker memory grew {Growth("w")} %");
        var csv = File.ReadAllLines(Path.Combine(_dir, "soak.csv"));
        Assert.Equal("seconds,step,coordinator_mb,worker1_mb,worker2_mb", csv[0]);
        Assert.True(csv.Length > 20);
    }
}
