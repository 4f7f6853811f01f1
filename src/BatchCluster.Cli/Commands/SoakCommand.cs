using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using BatchCluster.Cli.Options;
using BatchCluster.Cli.Processes;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster soak</c>: a long multi-process run (a coordinator and worker processes on
/// loopback) with every process's resident memory sampled as it goes and the step times read from
/// the event log afterwards. A leak, or work that grows with the step count, shows as growth from
/// step 100 (past start-up and warm-up) to the end; the run passes when every process's memory and
/// the median step time grew less than <see cref="AllowedGrowth"/> (scripts/soak.sh; a test runs a short one).
/// </summary>
public static class SoakCommand
{
    public const double AllowedGrowth = 0.10;
    private const long FirstMeasuredStep = 100;

    private static readonly Option<int?> Workers = Opt.Int("workers", "worker processes [default: 2]", 1, 32);
    private static readonly Option<long?> Steps = Opt.Long("steps", "run length [default: 20000]", 600, helpName: "S");
    private static readonly Option<int?> GlobalBatch = Opt.Int("global-batch", "[default: 128]", 1, helpName: "B");
    private static readonly Option<string> Model = Opt.Choice("model", "network", "mlp", "mlp", "cnn");
    private static readonly Option<string?> Out = Opt.Text("out", "the run's log and soak.csv (time, step, resident MB per process) [default: soak]", "DIR");
    private static readonly Option<string> Dataset = Opt.Choice("dataset", "data set", "fashion-mnist", "fashion-mnist", "synthetic");
    private static readonly Option<string?> DataDir = Opt.Text("data-dir", "IDX files [default: as for train]", "DIR");

    public static Command Create()
    {
        var command = new Command("soak", """
            a long multi-process run; every process's memory is sampled and the step times read from the log.
            Passes when both grew under 10 % from step 100 to the end.
            Last line: 'soak: S steps, memory growth coordinator +x %, workers +y % (max), step time +z % from step 100'
            """);
        foreach (var option in new Option[] { Workers, Steps, GlobalBatch, Model, Out, Dataset, DataDir }) command.Options.Add(option);
        command.SetAction((r, cancellation) => RunAsync(r, cancellation));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult r, CancellationToken cancellation)
    {
        int workers = r.GetValue(Workers) ?? 2;
        long steps = r.GetValue(Steps) ?? 20_000;
        int globalBatch = r.GetValue(GlobalBatch) ?? 128;
        string model = r.GetValue(Model)!;
        string dataset = r.GetValue(Dataset)!;
        string? dataDir = r.GetValue(DataDir);
        string outDir = r.GetValue(Out) ?? "soak";
        OutputPaths.CheckDirectory("--out", outDir);
        outDir = Path.GetFullPath(outDir);
        if (Directory.Exists(Path.Combine(outDir, "runs"))) Directory.Delete(Path.Combine(outDir, "runs"), recursive: true);
        Directory.CreateDirectory(outDir);

        int port = Processes.LoopbackPorts.Free();
        string[] data = dataDir is null ? ["--dataset", dataset] : ["--dataset", dataset, "--data-dir", dataDir];
        var coordinator = new ChildProcess([
            "node", "--role", "coordinator", "--port", port.ToString(CultureInfo.InvariantCulture), "--start-workers", workers.ToString(CultureInfo.InvariantCulture),
            "--model", model, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--global-batch", globalBatch.ToString(CultureInfo.InvariantCulture),
            "--eval-every", "0", "--train-eval-samples", "0", "--threads", "1", "--runs-dir", Path.Combine(outDir, "runs"), "--run-id", "soak", .. data]);
        var nodes = new List<ChildProcess> { coordinator };
        try
        {
            for (int i = 0; i < workers; i++)
                nodes.Add(new ChildProcess(["node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", .. dataDir is null ? Array.Empty<string>() : ["--data-dir", dataDir]]));
            var samples = new List<(DateTimeOffset At, long[] Resident)>();
            var clock = Stopwatch.StartNew();
            while (!coordinator.HasExited)
            {
                var resident = nodes.Select(n => n.ResidentBytes() ?? 0).ToArray();
                if (resident.All(r => r > 0)) samples.Add((DateTimeOffset.UtcNow, resident));
                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellation);
                if (clock.Elapsed > TimeSpan.FromHours(12)) throw new CommandFailedException("soak: the run took more than 12 hours");
            }
            if (coordinator.ExitCode != 0)
                throw new CommandFailedException($"soak: the coordinator exited with {coordinator.ExitCode}: {string.Join(" | ", coordinator.Output.TakeLast(3))}");
            var committed = Analysis.Logs.EventLogReader.Read(Path.Combine(outDir, "runs", "soak", "events.clef")).Steps;
            var verdict = Judge(samples, committed, workers, Path.Combine(outDir, "soak.csv"));
            Console.Out.WriteLine(verdict.Line);
            return verdict.Passed ? 0 : 1;
        }
        finally
        {
            foreach (var node in nodes) node.Dispose();
        }
    }

    private sealed record Verdict(bool Passed, string Line);

    /// <summary>
    /// Memory: the median of the samples in the first 5 % of the measured span (from step 100) against
    /// the median of the last 5 %, per process (medians, so one garbage collection's swing is not growth).
    /// Step time: the median of steps 100…(100 + 10 %) against the last 10 % of steps.
    /// </summary>
    private static Verdict Judge(List<(DateTimeOffset At, long[] Resident)> samples, IReadOnlyList<Analysis.Logs.StepPoint> steps,
        int workers, string csvPath)
    {
        var start = steps.First(s => s.Step == FirstMeasuredStep).At;
        var end = steps[^1].At;
        var measured = samples.Where(s => s.At >= start && s.At <= end).ToList();
        using (var csv = new StreamWriter(csvPath))
        {
            csv.WriteLine("seconds,step," + string.Join(',', Enumerable.Range(0, workers + 1).Select(i => i == 0 ? "coordinator_mb" : $"worker{i}_mb")));
            foreach (var (at, resident) in samples)
            {
                long step = steps.LastOrDefault(s => s.At <= at)?.Step ?? 0;
                csv.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(at - samples[0].At).TotalSeconds:F2},{step},{string.Join(',', resident.Select(r => (r / 1048576.0).ToString("F1", CultureInfo.InvariantCulture)))}"));
            }
        }
        if (measured.Count < 20)
            return new Verdict(false, $"soak: only {measured.Count} memory samples between step {FirstMeasuredStep} and the end; run more --steps");
        int window = Math.Max(3, measured.Count / 20);
        var growth = new double[workers + 1];
        for (int p = 0; p <= workers; p++)
        {
            double first = Analysis.Summary.RunRow.Median(measured.Take(window).Select(s => (double)s.Resident[p]));
            double last = Analysis.Summary.RunRow.Median(measured.TakeLast(window).Select(s => (double)s.Resident[p]));
            growth[p] = last / first - 1;
        }
        var timed = steps.Where(s => s.Step >= FirstMeasuredStep).ToList();
        int stepWindow = Math.Max(10, timed.Count / 10);
        double stepGrowth = Analysis.Summary.RunRow.Median(timed.TakeLast(stepWindow).Select(s => s.StepMs)) / Analysis.Summary.RunRow.Median(timed.Take(stepWindow).Select(s => s.StepMs)) - 1;
        bool passed = growth.All(g => g < AllowedGrowth) && stepGrowth < AllowedGrowth;
        string line = string.Create(CultureInfo.InvariantCulture,
            $"soak: {steps.Count} steps, memory growth coordinator {100 * growth[0]:+0.0;-0.0;+0.0} %, workers {100 * growth.Skip(1).Max():+0.0;-0.0;+0.0} % (max), step time {100 * stepGrowth:+0.0;-0.0;+0.0} % from step {FirstMeasuredStep} ({measured.Count} samples){(passed ? "" : $" — FAILED: want every growth under {100 * AllowedGrowth:F0} %")}");
        return new Verdict(passed, line);
    }

}
