using System.Globalization;
using BatchCluster.Analysis;
using BatchCluster.Cli.Options;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster analyze &lt;runs-dir or events.clef…&gt; --out DIR</c>: the event logs in, the
/// summary tables, plots and index.html out (see <see cref="AnalysisReport"/>).
/// </summary>
public static class AnalyzeCommand
{
    private static readonly string[] Flags = ["out", "target-accuracy"];

    public const string Help = """
        batchcluster analyze <runs-dir | events.clef>… --out DIR [--target-accuracy A]
          <paths>              run directories (searched for events.clef) or event log files
          --out DIR            where summary.csv, summary.md, the PNG plots and index.html go (default analysis)
          --target-accuracy A  validation accuracy (fraction, e.g. 0.85) for the steps/samples/time-to-target
                               columns and the log–log steps-to-target plot
        """;

    public static Task<int> RunAsync(string[] args)
    {
        var flags = new FlagSet(args, Flags, "analyze", allowPositionals: true);
        if (flags.Positionals.Count == 0)
            throw new UsageException("analyze needs at least one runs directory or events.clef file, e.g. 'batchcluster analyze runs --out analysis'");
        string outDir = flags.String("out", "analysis");
        OutputPaths.CheckDirectory("--out", outDir);
        double? target = flags.Double("target-accuracy", 0, 1, minExclusive: true);
        AnalysisOutput output;
        try
        {
            output = AnalysisReport.Write(flags.Positionals, outDir, target);
        }
        catch (FileNotFoundException e)
        {
            throw new UsageException(e.Message);
        }
        var rows = output.Rows;
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"analyze: {rows.Count} runs ({rows.Count(r => r.Status == Analysis.Logs.RunStatus.Completed)} completed), {output.BadLines} unreadable lines skipped"));
        foreach (string log in output.EmptyLogs)
            Console.Out.WriteLine($"  left out {log}: it holds no run (no RunStarted and no step)");
        foreach (var row in rows)
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {row.RunId}: B {row.GlobalBatch}, {row.Workers} worker{(row.Workers == 1 ? "" : "s")}, lr {row.LrScaling}: val {100 * row.FinalValAccuracy:F2} %, {row.SamplesPerSecond:F0} samples/s, {row.Status.ToString().ToLowerInvariant()}"));
        Console.Out.WriteLine($"wrote {string.Join(", ", output.Files)} to {Path.GetFullPath(outDir)}");
        return Task.FromResult(0);
    }
}
