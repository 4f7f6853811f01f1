using SkiaSharp;

namespace BatchCluster.EndToEnd.Tests;

public sealed class ProbeCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("probe-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Probe_prints_a_row_per_batch_size_and_writes_a_csv_and_a_real_plot()
    {
        var outcome = CliProcess.Run("probe", "--dataset", "synthetic", "--batch-sizes", "7,8,9", "--repeats", "4", "--threads", "1", "--out", _dir);
        Assert.True(outcome.ExitCode == 0, outcome.StdErr);
        var rows = outcome.StdOutLines.Where(l => l.StartsWith("| ") && char.IsDigit(l[2])).ToList();
        Assert.Equal(new[] { "7", "8", "9" }, rows.Select(r => r.Split('|')[1].Trim()));
        Assert.EndsWith("| yes |", rows[1]); // 8 is the power of two

        var csv = File.ReadAllLines(Path.Combine(_dir, "probe.csv"));
        Assert.Equal("batch_size,repeats,median_ms,p10_ms,p90_ms,samples_per_s,resident_mb,power_of_two", csv[0]);
        Assert.Equal(3, csv.Length - 1);
        Assert.All(csv.Skip(1), line => Assert.True(double.Parse(line.Split(',')[5], System.Globalization.CultureInfo.InvariantCulture) > 0));

        using var image = SKBitmap.Decode(Path.Combine(_dir, "probe.png"));
        Assert.NotNull(image);
        Assert.Equal((900, 520), (image.Width, image.Height));
        var colours = new HashSet<SKColor>();
        for (int y = 0; y < image.Height; y += 7)
            for (int x = 0; x < image.Width; x += 7) colours.Add(image.GetPixel(x, y));
        Assert.True(colours.Count > 3, "the plot is blank");
    }

    [Fact]
    public void A_batch_size_beyond_the_data_is_refused()
    {
        BadInputTests.AssertRefused(CliProcess.Run("probe", "--dataset", "synthetic", "--batch-sizes", "8,999999", "--out", _dir),
            "--batch-sizes: 999999 is more than the 6000 training samples");
    }
}
