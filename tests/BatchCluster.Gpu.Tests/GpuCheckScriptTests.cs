namespace BatchCluster.Gpu.Tests;

/// <summary>
/// scripts/gpu-check.sh, as CI can run it: it publishes the self-contained check (under 64 MiB with the data set, so a
/// lent GPU machine can take it) and runs the small version on ILGPU's CPU accelerator, every check passing. Here rather
/// than among the end-to-end tests because its minutes (a trimmed publish) then run beside theirs.
/// </summary>
public sealed class GpuCheckScriptTests
{
    [Fact]
    public void The_dry_run_publishes_a_folder_that_fits_and_passes_every_check()
    {
        var outcome = ScriptProcess.Run(null, ScriptProcess.PathOf("gpu-check.sh"), "--dry-run");
        Assert.True(outcome.ExitCode == 0, outcome.StdErr + outcome.StdOut);
        string folder = Path.Combine(CliProcess.RepositoryRoot(), "artifacts", "gpu-check");
        long bytes = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.True(bytes < 64L * 1024 * 1024, $"{folder} holds {bytes / 1024 / 1024} MiB");
        Assert.False(Directory.EnumerateFiles(folder, "libtorch*", SearchOption.AllDirectories).Any(), "libtorch is left out");
        var summary = outcome.StdOutLines.Where(l => l.StartsWith("| exactness") || l.StartsWith("| training") || l.StartsWith("| do powers")).ToList();
        Assert.Equal(3, summary.Count);
        Assert.All(summary, line => Assert.Contains("| pass |", line));
        Assert.Contains("gradient 0.00e+00", summary[0]); // the tiled kernel a GPU runs gives the untiled kernel's bits
    }
}
