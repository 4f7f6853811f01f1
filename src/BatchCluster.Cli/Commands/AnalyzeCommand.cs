using System.CommandLine;
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
    private static readonly Argument<string[]> Paths = new("paths")
    {
        Description = "run directories (searched for events.clef) or event log files",
        Arity = ArgumentArity.ZeroOrMore,
    };
    private static readonly Option<string?> Out = Opt.Text("out", "where summary.csv, summary.md, the PNG plots and index.html go [default: analysis]", "DIR");
    private static readonly Option<double?> TargetAccuracy = Opt.Number("target-accuracy",
        "validation accuracy (a fraction, e.g. 0.85) for the steps/samples/time-to-target columns and the steps-to-target plot", 0, 1, minExclusive: true, helpName: "A");

    private static readonly Option<string> RunPages = Opt.Choice("run-pages",
        "which runs of a report of several get a page under runs/: all, one-per-config (the first run of each configuration, for reports kept in a repository) or none",
        "all", "all", "one-per-config", "none");

    public static Command Create()
    {
        var command = new Command("analyze", "tables, plots and an HTML report from event logs") { Paths, Out, TargetAccuracy, RunPages };
        command.SetAction(r => Run(r.GetValue(Paths) ?? [], r.GetValue(Out) ?? "analysis", r.GetValue(TargetAccuracy), r.GetValue(RunPages)!));
        return command;
    }

    private static int Run(string[] paths, string outDir, double? target, string runPages)
    {
        if (paths.Length == 0)
            throw new UsageException("analyze needs at least one runs directory or events.clef file, e.g. 'batchcluster analyze runs --out analysis'");
        OutputPaths.CheckDirectory("--out", outDir);
        AnalysisOutput output;
        try
        {
            output = AnalysisReport.Write(paths, outDir, target, runPages switch
            {
                "none" => Analysis.RunPages.None,
                "one-per-config" => Analysis.RunPages.OnePerConfiguration,
                _ => Analysis.RunPages.All,
            });
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
                $"  {row.RunId}: {row.Label}: val {100 * row.FinalValAccuracy:F2} %, {row.SamplesPerSecond:F0} samples/s, {row.Status.ToString().ToLowerInvariant()}"));
        // A report of several runs has a page per run under runs/: named by count, not file by file.
        var top = output.Files.Where(f => !f.Contains(Path.DirectorySeparatorChar)).ToList();
        string pages = output.RunPages > 0 ? $" and {output.RunPages} run pages under {AnalysisReport.RunPagesDirectory}/" : "";
        Console.Out.WriteLine($"wrote {string.Join(", ", top)}{pages} to {Path.GetFullPath(outDir)}");
        return 0;
    }
}
