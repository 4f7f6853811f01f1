namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// The chaos run at CI size (the same command scripts/chaos.sh runs): three worker processes, five
/// seeded kills and stops with replacements, then the run's own check of every step's global batch
/// and of the final parameters against the fault-free plain loop. 150 steps: alone on the 2-core machine the five events
/// were over by step ~40 (each waits for its replacement to join); a loaded machine slows the slowed workers' steps as
/// much as the joins, and a run that ends first fails the command ("the run ended before every event").
/// </summary>
public sealed class ChaosTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("chaos-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Workers_killed_and_stopped_at_random_lose_no_sample()
    {
        var outcome = CliProcess.Run(TimeSpan.FromMinutes(6), "chaos", "--workers", "3", "--steps", "150", "--global-batch", "96", "--events", "5",
            "--chaos-seed", "7", "--slowdown", "150", "--min-gap", "1", "--max-gap", "2", "--out", _dir);
        Assert.True(outcome.ExitCode == 0, outcome.StdOut + outcome.StdErr);
        Assert.Matches(@"^chaos: [5-9] events \(\d SIGKILL, \d SIGTERM\), 150 steps, 0 lost, max\|Δ\| ", outcome.LastLine);
        Assert.Equal(5, outcome.StdOutLines.Count(l => l.StartsWith("chaos: event ")));
    }
}
