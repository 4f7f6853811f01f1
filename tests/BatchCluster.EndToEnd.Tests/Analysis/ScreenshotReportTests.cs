using SkiaSharp;

namespace BatchCluster.EndToEnd.Tests.Analysis;

/// <summary>
/// scripts/screenshot-report.sh: a report looked at in headless Chromium, 1400 px wide. Where Chromium is
/// missing the script installs it (as root, through scripts/install-prerequisites.sh; CI runs as root).
/// </summary>
[Collection(TinyRunsCollection.Name)]
public sealed class ScreenshotReportTests(TinyRuns runs) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("screenshots-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_experiment_page_and_a_run_page_render_into_screenshots_that_show_something()
    {
        string report = Path.Combine(_dir, "report");
        var analyzed = CliProcess.Run("analyze", runs.RunsDir, "--out", report, "--target-accuracy", "0.5");
        Assert.True(analyzed.ExitCode == 0, analyzed.StdErr);

        var outcome = ScriptProcess.Run(null, ScriptProcess.PathOf("screenshot-report.sh"), report, "--run-pages", "1", "--out", Path.Combine(_dir, "shots"));
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);

        // The first run page in order (tiny-b128 sorts before tiny-b32), the first screen and the whole page of each.
        string[] expected = ["index.png", "index-full.png", "run-tiny-b128.png", "run-tiny-b128-full.png"];
        Assert.Equal(expected.Order(), Directory.GetFiles(Path.Combine(_dir, "shots")).Select(f => Path.GetFileName(f)).Order());
        foreach (string name in expected)
        {
            using var image = SKBitmap.Decode(Path.Combine(_dir, "shots", name));
            Assert.True(image is not null, $"{name} does not decode");
            Assert.Equal(1400, image.Width);
            Assert.True(name.EndsWith("-full.png") ? image.Height > 900 : image.Height == 900, $"{name} is {image.Height} px high");
            var colours = new HashSet<SKColor>();
            for (int y = 0; y < image.Height; y += 7)
                for (int x = 0; x < image.Width; x += 7) colours.Add(image.GetPixel(x, y));
            Assert.True(colours.Count > 50, $"{name} looks blank ({colours.Count} colours)"); // text, tables and plots: many shades
        }
    }

    [Fact]
    public void A_directory_without_a_report_is_refused_in_one_sentence()
    {
        var outcome = ScriptProcess.Run(null, ScriptProcess.PathOf("screenshot-report.sh"), _dir);
        Assert.Equal(2, outcome.ExitCode);
        Assert.Equal($"screenshot-report: '{_dir}' holds no index.html; give the directory 'batchcluster analyze --out' wrote", outcome.StdErr.Trim());
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }
}
