using System.Globalization;
using SkiaSharp;

namespace BatchCluster.EndToEnd.Tests.Analysis;

[Collection(TinyRunsCollection.Name)]
public sealed class AnalyzeCommandTests(TinyRuns runs) : IDisposable
{
    private readonly string _out = Path.Combine(Directory.CreateTempSubdirectory("analyze-").FullName, "report");

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_out)!, recursive: true);

    [Fact]
    public void Analyze_writes_one_row_per_run_and_every_plot_into_the_report()
    {
        var outcome = CliProcess.Run("analyze", runs.RunsDir, "--out", _out, "--target-accuracy", "0.5");
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);

        var csv = File.ReadAllLines(Path.Combine(_out, "summary.csv"));
        var header = csv[0].Split(',');
        var rows = csv.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(2, rows.Count);
        string Cell(string[] row, string column) => row[Array.IndexOf(header, column)];
        foreach (var row in rows)
        {
            string runId = Cell(row, "run_id");
            var summary = runs.Summaries[runId];
            Assert.Equal(summary.GetProperty("global_batch").GetInt32().ToString(CultureInfo.InvariantCulture), Cell(row, "global_batch"));
            Assert.Equal(summary.GetProperty("val_accuracy").GetDouble(), double.Parse(Cell(row, "final_val_accuracy"), CultureInfo.InvariantCulture));
            Assert.Equal(summary.GetProperty("test_accuracy").GetDouble(), double.Parse(Cell(row, "test_accuracy"), CultureInfo.InvariantCulture));
            Assert.Equal(summary.GetProperty("samples_per_s").GetDouble(), double.Parse(Cell(row, "samples_per_s"), CultureInfo.InvariantCulture), 6);
            Assert.Equal(TinyRuns.Steps.ToString(CultureInfo.InvariantCulture), Cell(row, "steps"));
            Assert.Equal("completed", Cell(row, "status"));
            Assert.True(double.Parse(Cell(row, "final_b_simple"), CultureInfo.InvariantCulture) > 0, "two shares per step give B_simple");
            // In-process workers are handed parameters and gradient (4 B × 203,530 each) per share by reference: two
            // shares per step; nothing crosses a process boundary.
            double perSample = 2 * 2 * 4 * 203_530.0 / summary.GetProperty("global_batch").GetInt32() + 4;
            Assert.Equal(perSample, double.Parse(Cell(row, "handed_over_per_sample"), CultureInfo.InvariantCulture), 1);
            Assert.Equal(0, double.Parse(Cell(row, "bytes_per_sample"), CultureInfo.InvariantCulture));
            int half = summary.GetProperty("global_batch").GetInt32() / 2;
            Assert.Equal($"{half}/{half}", Cell(row, "median_shares")); // two workers, declared shares
        }
        Assert.Equal(["32", "128"], rows.Select(r => Cell(r, "global_batch")));
        // 50 % validation accuracy comes within 20 steps at these settings: steps to target is a validation step.
        Assert.All(rows, r => Assert.Contains(Cell(r, "steps_to_target"), new[] { "20", "40" }));

        string markdown = File.ReadAllText(Path.Combine(_out, "summary.md"));
        Assert.Contains("| tiny-b32 |", markdown);
        Assert.Contains("| tiny-b128 |", markdown);

        // Each configuration has one run here: one row each in the grouped table, no spread.
        var grouped = File.ReadAllLines(Path.Combine(_out, "summary_by_config.md")).Skip(2).ToList();
        Assert.Equal(2, grouped.Count);
        Assert.All(grouped, line => Assert.DoesNotContain("±", line));

        string html = File.ReadAllText(Path.Combine(_out, "index.html"));
        var pngs = Directory.GetFiles(_out, "*.png").Select(f => Path.GetFileName(f)).ToList();
        string[] expected =
        [
            "loss_vs_step.png", "accuracy_vs_step.png", "loss_vs_epoch.png", "learning_rate_vs_step.png", "val_accuracy_vs_global_batch.png", "throughput_vs_global_batch.png",
            "generalization_gap_vs_global_batch.png", "steps_to_target_vs_global_batch.png", "seconds_to_target_vs_global_batch.png",
            "b_simple_over_training.png",
        ];
        Assert.Equal(expected.Order(), pngs.Order());
        AssertPlotsShown(_out, expected);

        // The experiment page leads with its findings, then the plots; the runs come last, folded, each linking to its page.
        int findings = html.IndexOf("<h2>Findings</h2>", StringComparison.Ordinal), plots = html.IndexOf("<h2>Plots</h2>", StringComparison.Ordinal);
        int table = html.IndexOf("<h2>Runs</h2>", StringComparison.Ordinal);
        Assert.True(findings > 0 && findings < plots && plots < table, "findings, then plots, then the runs");
        Assert.Contains("<details>", html[table..]);
        Assert.Contains("Best final validation accuracy", html[findings..plots]);
        foreach (string runId in runs.Summaries.Keys)
        {
            Assert.Contains($"href=\"runs/{runId}/index.html\"", html);
            string page = Path.Combine(_out, "runs", runId);
            Assert.Contains("href=\"../../index.html\"", File.ReadAllText(Path.Combine(page, "index.html")));
            AssertPlotsShown(page, RunPagePlots);
        }
    }

    /// <summary>What a run's page shows: its curves over steps and over wall time, throughput with events, the step time split, B_simple.</summary>
    private static readonly string[] RunPagePlots =
    [
        "accuracy_vs_step.png", "b_simple_over_training.png", "learning_rate_vs_step.png", "loss_vs_step.png", "loss_vs_time.png",
        "step_time_split.png", "throughput_vs_time.png",
    ];

    /// <summary>Every plot file in <paramref name="dir"/> is one of <paramref name="expected"/>, is on the page there, decodes and is not blank.</summary>
    private static void AssertPlotsShown(string dir, IReadOnlyList<string> expected)
    {
        Assert.Equal(expected.Order(), Directory.GetFiles(dir, "*.png").Select(f => Path.GetFileName(f)).Order());
        string html = File.ReadAllText(Path.Combine(dir, "index.html"));
        foreach (string png in expected)
        {
            Assert.Contains($"src=\"{png}\"", html);
            AssertRealPicture(Path.Combine(dir, png));
        }
    }

    /// <summary>One run (what scripts/run.sh reports): its curves over the run (with its step time split), and no plot against global batch with a single point on it.</summary>
    [Fact]
    public void A_single_run_gets_its_curves_and_no_plots_against_global_batch()
    {
        var outcome = CliProcess.Run("analyze", runs.LogOf("tiny-b32"), "--out", _out, "--target-accuracy", "0.5");
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);
        AssertPlotsShown(_out, RunPagePlots);
        Assert.False(Directory.Exists(Path.Combine(_out, "runs")), "one run: the report is its page");

        // Its workers: both computed half of every step's 32 samples.
        string html = File.ReadAllText(Path.Combine(_out, "index.html"));
        var log = BatchCluster.Analysis.Logs.EventLogReader.Read(runs.LogOf("tiny-b32"));
        foreach (var worker in log.Workers)
            Assert.Contains($"<td>{worker.WorkerId}</td><td>{worker.Address}</td><td>cpu</td><td>1</td><td>in-process</td><td>1</td>", html);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(html, $"<td>{TinyRuns.Steps}</td><td>16</td>").Count);
        Assert.Contains("Run tiny-b32", html);
        // Its workers share the coordinator's process: nothing crossed a wire, and the page says what was handed over instead
        // (2 shares of 16: 2 × (parameters + gradient) × 4 B + 32 ids × 4 B, over 32 samples).
        Assert.Contains("<th>bytes across processes per sample</th><td>0</td>", html);
        Assert.Contains("<th>bytes handed over in-process per sample</th><td>101,769 (by reference: nothing copied or sent)</td>", html);
    }

    [Fact]
    public void A_log_without_a_run_is_left_out_and_named_and_its_bad_lines_are_counted()
    {
        string mixed = Directory.CreateTempSubdirectory("mixed-logs-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(mixed, "good"));
            File.Copy(runs.LogOf("tiny-b32"), Path.Combine(mixed, "good", "events.clef"));
            Directory.CreateDirectory(Path.Combine(mixed, "garbage"));
            File.WriteAllText(Path.Combine(mixed, "garbage", "events.clef"), "not json\n{\"half\": \n");
            var outcome = CliProcess.Run("analyze", mixed, "--out", _out);
            Assert.True(outcome.ExitCode == 0, outcome.StdErr);
            Assert.Contains(outcome.StdOutLines, l => l.StartsWith("analyze: 1 runs") && l.Contains("2 unreadable lines skipped"));
            Assert.Contains(outcome.StdOutLines, l => l.StartsWith("left out") && l.Contains("garbage"));
            Assert.Equal(2, File.ReadAllLines(Path.Combine(_out, "summary.csv")).Length);
        }
        finally
        {
            Directory.Delete(mixed, recursive: true);
        }
    }

    [Fact]
    public void A_path_that_does_not_exist_is_refused_and_nothing_is_written()
    {
        BadInputTests.AssertRefused(CliProcess.Run("analyze", Path.Combine(runs.RunsDir, "no-such-run"), "--out", _out), "is neither an event log nor a directory");
        Assert.False(Directory.Exists(_out));
    }

    [Fact]
    public void A_directory_without_event_logs_is_refused()
    {
        string empty = Directory.CreateTempSubdirectory("no-logs-").FullName;
        try
        {
            BadInputTests.AssertRefused(CliProcess.Run("analyze", empty, "--out", _out), "no events.clef under");
        }
        finally
        {
            Directory.Delete(empty);
        }
    }

    /// <summary>Decodes the PNG and checks it is more than a blank canvas (many distinct colours).</summary>
    private static void AssertRealPicture(string path)
    {
        using var image = SKBitmap.Decode(path);
        Assert.True(image is not null, $"{path} does not decode as an image");
        var colours = new HashSet<SKColor>();
        for (int y = 0; y < image.Height; y += 5)
            for (int x = 0; x < image.Width; x += 5) colours.Add(image.GetPixel(x, y));
        Assert.True(colours.Count > 10, $"{Path.GetFileName(path)} looks blank ({colours.Count} colours)");
    }
}
