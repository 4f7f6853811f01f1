using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using BatchCluster.Cli.Options;
using BatchCluster.Cli.Output;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Models;
using BatchCluster.Core.Training;
using static BatchCluster.Core.Numerics.Statistics;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench metrics</c>: what the live metrics (<c>--metrics-port</c>, docs/monitoring.md) cost a step of the main
/// job's shape (B 128, local cluster of 4 workers). Three figures: the instruments' recording per step with the exporter listening
/// (a step's record and one share per worker, timed in a tight loop); the CPU one scrape of the endpoint takes (client and
/// server, both in this process), spread over the steps of a scrape interval; and whole runs with the endpoint serving and
/// scraped against runs without it, alternating so that drift favours neither. The first two are exact and small; the third
/// is the check that nothing else (a lock, a thread) costs more, and is as noisy as the machine.
/// </summary>
public static class BenchMetricsCommand
{
    private static readonly Option<int?> GlobalBatch = Opt.Int("global-batch", "global batch [default: 128]", 8, helpName: "B");
    private static readonly Option<int?> Workers = Opt.Int("workers", "local workers [default: 4]", 1, 64, "N");
    private static readonly Option<int?> Steps = Opt.Int("steps", "steps per run [default: 2000]", 200, helpName: "S");
    private static readonly Option<int?> Repeats = Opt.Int("repeats", "runs of each kind [default: 4]", 1, 50, "R");
    private static readonly Option<double?> ScrapeInterval = Opt.Number("scrape-interval", "seconds between scrapes during the runs [default: 1; Prometheus' own default is 15]", 0.05, 3600, helpName: "SECONDS");

    public static Command Create()
    {
        var command = new Command("metrics", "what --metrics-port costs a step: the instruments' recording, a scrape, and whole runs with and without the endpoint")
        {
            GlobalBatch, Workers, Steps, Repeats, ScrapeInterval,
        };
        command.SetAction((r, cancellation) => RunAsync(r, cancellation));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult r, CancellationToken cancellation)
    {
        int batch = r.GetValue(GlobalBatch) ?? 128, workers = r.GetValue(Workers) ?? 4, steps = r.GetValue(Steps) ?? 2000, repeats = r.GetValue(Repeats) ?? 4;
        var interval = TimeSpan.FromSeconds(r.GetValue(ScrapeInterval) ?? 1);
        const int warmup = 100;
        var data = DataSource.Load("fashion-mnist", FashionMnist.DefaultDirectory, FashionMnist.DefaultValidationSize, 1);
        var config = new TrainingConfig
        {
            Model = ModelSpec.Mlp(), GlobalBatch = batch, Steps = warmup + steps, EvalEvery = 0, TrainEvalSamples = 0, Engine = Engine.Actors, Workers = workers,
        };
        float[] initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        Console.Out.WriteLine($"bench metrics: {config.Model}, B {batch}, local cluster of {workers} workers, {steps} timed steps after {warmup}, {repeats} runs of each kind, a scrape every {interval.TotalSeconds:0.###} s while metrics are on");

        var offRuns = new List<BenchOverheadCommand.Measurement>();
        var onRuns = new List<BenchOverheadCommand.Measurement>();
        StepRecord? sample = null;
        long scrapes = 0;
        for (int i = 0; i < repeats; i++)
            foreach (bool on in i % 2 == 0 ? new[] { false, true } : [true, false])
            {
                if (!on)
                {
                    offRuns.Add(await BenchOverheadCommand.MeasureInProcessAsync(config, data, initial, warmup, cancellation, s => sample ??= s));
                    continue;
                }
                int port = Processes.LoopbackPorts.Free();
                using var endpoint = MetricsEndpoint.Start("127.0.0.1", port, "train");
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                var scraper = ScrapeEveryAsync(port, interval, stop.Token);
                onRuns.Add(await BenchOverheadCommand.MeasureInProcessAsync(config, data, initial, warmup, cancellation));
                await stop.CancelAsync();
                scrapes += await scraper;
            }
        if (scrapes == 0) throw new InvalidOperationException("no scrape happened during the runs with metrics on: make the runs longer (--steps) or the interval shorter");

        double stepMs = Median(offRuns.Select(m => m.StepMs));
        double recordUs = RecordingMicroseconds(sample!, workers);
        double scrapeMs = await ScrapeCpuMillisecondsAsync();
        // A scrape every `interval` is shared by the steps of that interval.
        double scrapeUsPerStep = scrapeMs * 1000 * (stepMs / interval.TotalMilliseconds);
        double scrapeUsPerStepAt15s = scrapeMs * 1000 * (stepMs / 15_000);
        double fraction = (recordUs + scrapeUsPerStep) / 1000 / stepMs;
        var ratios = onRuns.Zip(offRuns, (on, off) => on.SamplesPerSecond / off.SamplesPerSecond).ToList();

        Console.Out.WriteLine();
        Console.Out.WriteLine("| what | per step | fraction of the median step |");
        Console.Out.WriteLine("| --- | ---: | ---: |");
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| recording (a step and {workers} shares, exporter listening) | {recordUs:F2} µs | {recordUs / 1000 / stepMs:P3} |"));
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| a scrape ({scrapeMs:F2} ms CPU) every {interval.TotalSeconds:0.###} s | {scrapeUsPerStep:F2} µs | {scrapeUsPerStep / 1000 / stepMs:P3} |"));
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| a scrape every 15 s (Prometheus' default) | {scrapeUsPerStepAt15s:F3} µs | {scrapeUsPerStepAt15s / 1000 / stepMs:P4} |"));
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| together (scrape every {interval.TotalSeconds:0.###} s) | {recordUs + scrapeUsPerStep:F2} µs | {fraction:P3} |"));
        Console.Out.WriteLine();
        Console.Out.WriteLine("| runs | samples/s (median) | min – max | median step ms |");
        Console.Out.WriteLine("| --- | ---: | ---: | ---: |");
        foreach (var (name, runs) in new[] { ("metrics off", offRuns), ("metrics on, scraped", onRuns) })
        {
            var speeds = runs.Select(m => m.SamplesPerSecond).ToList();
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {Median(speeds):F0} | {speeds.Min():F0} – {speeds.Max():F0} | {Median(runs.Select(m => m.StepMs)):F3} |"));
        }
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"on / off, runs back to back: median {Median(ratios):F3} (each: {string.Join(", ", ratios.Select(x => x.ToString("F3", CultureInfo.InvariantCulture)))}); {scrapes} scrapes"));
        Console.Out.WriteLine();
        Console.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["global_batch"] = batch, ["workers"] = workers, ["step_ms"] = Math.Round(stepMs, 3),
            ["record_us_per_step"] = Math.Round(recordUs, 3), ["scrape_cpu_ms"] = Math.Round(scrapeMs, 3),
            ["scrape_interval_s"] = interval.TotalSeconds, ["metrics_cost_fraction"] = Math.Round(fraction, 6),
            ["on_vs_off_samples_per_s"] = Math.Round(Median(ratios), 3),
        }));
        return 0;
    }

    /// <summary>Microseconds per step of what the instruments record in a step of <paramref name="workers"/> shares, with the exporter's listener attached.</summary>
    private static double RecordingMicroseconds(StepRecord step, int workers)
    {
        using var endpoint = MetricsEndpoint.Start("127.0.0.1", Processes.LoopbackPorts.Free(), "train");
        const int warmup = 20_000, timed = 200_000;
        var clock = new Stopwatch();
        for (int i = 0; i < warmup + timed; i++)
        {
            if (i == warmup) clock.Start();
            TrainingMetrics.StepCompleted(step);
            for (int w = 0; w < workers; w++) TrainingMetrics.ShareComputed(step.GlobalBatch / workers, 0.3 + 0.01 * w);
        }
        return clock.Elapsed.TotalMicroseconds / timed;
    }

    /// <summary>Milliseconds of this process' CPU per scrape (the exporter's serialisation and the HTTP round trip), median of rounds.</summary>
    private static async Task<double> ScrapeCpuMillisecondsAsync()
    {
        int port = Processes.LoopbackPorts.Free();
        using var endpoint = MetricsEndpoint.Start("127.0.0.1", port, "train");
        using var client = new HttpClient();
        string url = $"http://127.0.0.1:{port}{MetricsEndpoint.Path}";
        for (int i = 0; i < 20; i++) await client.GetStringAsync(url);
        var perRound = new List<double>();
        const int perRoundScrapes = 50;
        for (int round = 0; round < 5; round++)
        {
            var before = Process.GetCurrentProcess().TotalProcessorTime;
            for (int i = 0; i < perRoundScrapes; i++) await client.GetStringAsync(url);
            perRound.Add((Process.GetCurrentProcess().TotalProcessorTime - before).TotalMilliseconds / perRoundScrapes);
        }
        return Median(perRound);
    }

    /// <summary>Scrapes the endpoint every <paramref name="interval"/> until cancelled; returns how many scrapes were answered.</summary>
    private static async Task<long> ScrapeEveryAsync(int port, TimeSpan interval, CancellationToken cancellation)
    {
        using var client = new HttpClient();
        using var timer = new PeriodicTimer(interval);
        long answered = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellation))
            {
                string page = await client.GetStringAsync($"http://127.0.0.1:{port}{MetricsEndpoint.Path}", cancellation);
                if (page.Contains("batchcluster_steps_total", StringComparison.Ordinal)) answered++;
            }
        }
        catch (OperationCanceledException) { }
        return answered;
    }
}
