using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using BatchCluster.Cli.Options;
using BatchCluster.Core.BatchSizing;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench sizing</c>: what choosing the batch costs a step (docs/adaptive-batch.md, "Cost"). First the bookkeeping
/// alone — the batch-scaled noise estimates, the throughput model and a decision window, as the session does them after every step
/// of four shares — in microseconds per step; then whole runs at global batch 128 on the local cluster (4 workers) and the plain
/// loop, each fixed against the same run with --global-batch auto held at 128 (range 128:128: the planner decides, nothing
/// changes) and, for the plain loop, the two halves an estimating run computes. The noise window's sum (adding the mean as it is
/// averaged) is timed apart, on the average of four MLP shares with and without it. Runs alternate so drift favours neither.
/// </summary>
public static class BenchSizingCommand
{
    private static readonly Option<int?> Steps = Opt.Int("steps", "steps per run [default: 2000]", 200, helpName: "S");
    private static readonly Option<int?> Repeats = Opt.Int("repeats", "runs of each kind [default: 3]", 1, 50, "R");

    public static Command Create()
    {
        var command = new Command("sizing", "what --global-batch auto costs a step: its bookkeeping alone, and whole runs at B 128 against fixed ones") { Steps, Repeats };
        command.SetAction((r, cancellation) => RunAsync(r, cancellation));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult r, CancellationToken cancellation)
    {
        int steps = r.GetValue(Steps) ?? 2000;
        int repeats = r.GetValue(Repeats) ?? 3;
        double sizerUs = Bookkeeping(), windowUs = WindowAdd(), bookkeepingUs = sizerUs + windowUs;
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench sizing: the bookkeeping of an adaptive step: {bookkeepingUs:F2} µs per step — {sizerUs:F2} µs for the noise estimates, throughput model and a decision every 100 steps (4 shares), {windowUs:F2} µs for adding the mean to the noise window as four MLP shares are averaged"));

        var data = DataSource.Load("fashion-mnist", FashionMnist.DefaultDirectory, FashionMnist.DefaultValidationSize, 1);
        var baseConfig = new TrainingConfig
        {
            Model = ModelSpec.Mlp(), GlobalBatch = 128, BaseBatch = 128, Steps = steps, EvalEvery = 0, TrainEvalSamples = 0,
            Optimizer = new Core.Optimizers.OptimizerSettings(Core.Optimizers.OptimizerKind.Momentum), LearningRate = 0.05,
        };
        var auto = new AdaptiveBatch(128, 128, AdaptEvery: 100);
        var kinds = new (string Key, TrainingConfig Config)[]
        {
            ("local4_fixed", baseConfig with { Engine = Engine.Actors, Workers = 4 }),
            ("local4_auto", baseConfig with { Engine = Engine.Actors, Workers = 4, Adaptive = auto, LrScaling = Core.Schedules.LrScaling.AdaScale }),
            ("plain_fixed", baseConfig with { Engine = Engine.Plain, Workers = 1 }),
            ("plain_auto", baseConfig with { Engine = Engine.Plain, Workers = 1, Adaptive = auto, LrScaling = Core.Schedules.LrScaling.AdaScale }),
        };
        var results = kinds.ToDictionary(k => k.Key, _ => new List<(double SamplesPerSecond, double StepMs)>());
        const int warmup = 100;
        float[] initial = ModelFactory.InitialParameters(baseConfig.Model, baseConfig.Seed);
        for (int i = 0; i < repeats; i++)
            foreach (var (key, config) in i % 2 == 0 ? kinds : kinds.Reverse())
            {
                var measured = await BenchOverheadCommand.MeasureInProcessAsync(config, data, initial, warmup, cancellation);
                results[key].Add((measured.SamplesPerSecond, measured.StepMs));
            }

        Console.Out.WriteLine();
        Console.Out.WriteLine("| run (B 128) | samples/s (median) | min – max | median step ms |");
        Console.Out.WriteLine("| --- | ---: | ---: | ---: |");
        var json = new Dictionary<string, object>
        {
            ["sizing_us_per_step"] = Math.Round(bookkeepingUs, 3), ["sizer_us_per_step"] = Math.Round(sizerUs, 3), ["noise_window_us_per_step"] = Math.Round(windowUs, 3),
        };
        foreach (var (key, _) in kinds)
        {
            var speeds = results[key].Select(m => m.SamplesPerSecond).Order().ToList();
            double median = speeds[speeds.Count / 2], stepMs = results[key].Select(m => m.StepMs).Order().ElementAt(speeds.Count / 2);
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {key} | {median:F0} | {speeds[0]:F0} – {speeds[^1]:F0} | {stepMs:F3} |"));
            json[$"{key}_samples_per_s"] = Math.Round(median);
            json[$"{key}_step_ms"] = Math.Round(stepMs, 3);
        }
        double step128 = (double)json["local4_fixed_step_ms"];
        json["sizing_fraction_of_local4_b128_step"] = Math.Round(bookkeepingUs / 1000 / step128, 5);
        Console.Out.WriteLine();
        Console.Out.WriteLine(JsonSerializer.Serialize(json));
        return 0;
    }

    /// <summary>Microseconds per step of what an adaptive run adds after each step: BatchSizer.Observe and Next, and the layout key.</summary>
    private static double Bookkeeping()
    {
        var config = new TrainingConfig { GlobalBatch = 128, BaseBatch = 128, Adaptive = new AdaptiveBatch(32, 4096, AdaptEvery: 100), LrScaling = Core.Schedules.LrScaling.AdaScale };
        var tensors = ModelFactory.LayoutOf(ModelSpec.Mlp()).Sizes;
        var sizer = new BatchSizer(config, 55_000, tensors.Sum(), tensors);
        string[] workers = ["akka://batchcluster-local/user/worker-0", "akka://batchcluster-local/user/worker-1", "akka://batchcluster-local/user/worker-2", "akka://batchcluster-local/user/worker-3"];
        var rng = new Random(1);
        const int warmup = 20_000, timed = 200_000;
        var clock = new Stopwatch();
        for (long step = 0; step < warmup + timed; step++)
        {
            if (step == warmup) clock.Start();
            int batch = sizer.Batch, share = batch / 4;
            // Norms as a real step gives them: four shares' gradient sums and the mean, a little noise on top.
            var shares = new List<(int, double)>(4);
            for (int s = 0; s < 4; s++) shares.Add((share, share * share * (1 + 100.0 / share) * (1 + 0.1 * rng.NextDouble())));
            string layout = string.Join(',', workers.Order(StringComparer.Ordinal));
            sizer.Observe(batch, sizer.GainAt(batch), shares, 1 + 100.0 / batch, layout, new StepTiming(0.5 + 0.003 * batch, 0.2, 0.1, 1.5 + 0.003 * batch));
            sizer.Next(step + 1);
        }
        return clock.Elapsed.TotalMicroseconds / timed;
    }

    /// <summary>
    /// Microseconds per step the noise window's sum adds to the coordinator's average of four MLP shares (ExactAverage with the
    /// mean also added to the window, block by block, against without): medians of alternating rounds.
    /// </summary>
    private static double WindowAdd()
    {
        var tensors = ModelFactory.LayoutOf(ModelSpec.Mlp()).Sizes;
        int parameters = tensors.Sum();
        var shares = Enumerable.Range(0, 4).Select(s =>
            new Core.Gradients.ShareGradient(Enumerable.Range(0, parameters).Select(i => 1e-3f * ((i + s) % 11 - 5)).ToArray(), 32, 1, 1, 1)).ToList();
        var mean = new float[parameters];
        var window = new Core.Gradients.PersistentGradient(parameters, TrainingConfig.DefaultNoiseWindow, tensors, seed: 1);
        var with = new List<double>();
        var without = new List<double>();
        var clock = new Stopwatch();
        for (int round = 0; round < 40; round++)
            foreach (bool add in round % 2 == 0 ? new[] { true, false } : [false, true])
            {
                clock.Restart();
                for (int i = 0; i < 100; i++)
                    Core.Gradients.ExactAverage.Compute(shares, mean, out _, 0, add ? window : null);
                (add ? with : without).Add(clock.Elapsed.TotalMicroseconds / 100);
            }
        with.Sort();
        without.Sort();
        return Math.Max(0, with[with.Count / 2] - without[without.Count / 2]);
    }
}
