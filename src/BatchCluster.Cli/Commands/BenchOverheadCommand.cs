using System.Diagnostics;
using System.Globalization;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench overhead</c>: training samples/s of the plain loop against the local
/// simulated cluster with 1 and 2 workers, per global batch, and their ratios. The first steps of
/// each run (JIT, allocator warm-up) are not timed; each layout runs several times, interleaved in
/// alternating order, and medians are reported (of throughputs, and of the ratios of runs made
/// back to back), because this is a small shared machine whose speed drifts by ±20%.
/// </summary>
public static class BenchOverheadCommand
{
    private static readonly string[] Flags = ["dataset", "data-dir", "global-batches", "steps", "repeats", "warmup-steps", "threads"];

    private sealed record Layout(string Name, Engine Engine, int Workers, int ThreadsPerProcess);

    public static async Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        var flags = new FlagSet(args, Flags, "bench overhead");
        string dataset = flags.Choice("dataset", "fashion-mnist", "fashion-mnist", "synthetic");
        int[] batches = flags.IntList("global-batches", 2) ?? [256, 1024];
        int steps = flags.Int("steps", 10) ?? 200;
        int repeats = flags.Int("repeats", 1) ?? 5;
        int warmup = flags.Int("warmup-steps", 1) ?? 20;
        int threads = flags.Int("threads", 1, 256) ?? Environment.ProcessorCount;

        var baseConfig = new TrainingConfig
        {
            Dataset = dataset,
            DataDirectory = flags.String("data-dir", FashionMnist.DefaultDirectory),
            Model = ModelSpec.Mlp(),
            EvalEvery = 0,
            Steps = warmup + steps,
        };
        var data = DataSource.Load(baseConfig.Dataset, baseConfig.DataDirectory, baseConfig.ValidationSize, baseConfig.Seed);
        TorchRuntime.Initialise(threads);
        float[] initial = ModelFactory.InitialParameters(baseConfig.Model, baseConfig.Seed);
        // libtorch's thread count is per process; two workers share the cores, one thread each.
        Layout[] layouts =
        [
            new("plain", Engine.Plain, 1, threads),
            new("actors, 1 worker", Engine.Actors, 1, threads),
            new("actors, 2 workers", Engine.Actors, 2, Math.Max(1, threads / 2)),
        ];

        Console.Out.WriteLine($"bench overhead: MLP {initial.Length} parameters, {dataset}, {steps} timed steps after {warmup} warm-up steps, median of {repeats} runs, {threads} threads, {Environment.ProcessorCount} cores");
        Console.Out.WriteLine();
        Console.Out.WriteLine("| global batch | layout | samples/s (median) | min – max | ratio to plain (median of paired runs) | ratio min – max |");
        Console.Out.WriteLine("| ---: | --- | ---: | ---: | ---: | ---: |");
        foreach (int batch in batches)
        {
            var samples = layouts.ToDictionary(l => l, _ => new List<double>());
            for (int r = 0; r < repeats; r++)
            {
                // Alternate the order so that a slow drift of the shared machine favours no layout.
                var order = r % 2 == 0 ? layouts : layouts.Reverse().ToArray();
                foreach (var layout in order)
                {
                    var config = baseConfig with { GlobalBatch = batch, Engine = layout.Engine, Workers = layout.Workers, Threads = layout.ThreadsPerProcess };
                    samples[layout].Add(await MeasureAsync(config, data, initial, warmup, cancellation));
                }
            }
            var plain = samples[layouts[0]];
            foreach (var layout in layouts)
            {
                var values = samples[layout];
                // Ratios of runs made back to back (same repeat) cancel most of the machine's drift.
                var ratios = values.Zip(plain, (v, p) => v / p).ToList();
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {batch} | {layout.Name} | {Median(values):F0} | {values.Min():F0} – {values.Max():F0} | {Median(ratios):F3} | {ratios.Min():F3} – {ratios.Max():F3} |"));
            }
        }
        return 0;
    }

    /// <summary>Samples/s over the steps after the warm-up, measured from the step records' wall times.</summary>
    private static async Task<double> MeasureAsync(TrainingConfig config, DataSplits data, float[] initial, int warmup, CancellationToken cancellation)
    {
        TorchRuntime.Initialise(config.EffectiveThreads);
        long timedSamples = 0;
        var clock = new Stopwatch();
        void OnStep(StepRecord step, TrainingSession session)
        {
            if (step.Step + 1 == warmup) clock.Start(); // time from the end of the last warm-up step
            else if (step.Step + 1 > warmup) timedSamples += step.GlobalBatch;
            if (session.Finished) clock.Stop();
        }
        var events = new RunEvents(Logger.None, "bench");
        await Engines.RunAsync(config, data, initial, events, "", OnStep, cancellation);
        return timedSamples / clock.Elapsed.TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
