using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench overhead</c>: training samples/s of the plain loop, the local simulated
/// cluster (1, 2 and 4 workers) and real processes on loopback — a coordinator node with 2 worker
/// nodes (star, and ring), and a coordinator node hosting one worker beside 1 worker node — per global batch, and
/// their ratios; where a step's time goes beyond compute (the fixed cost: step − the critical
/// share's compute, and its parts: in flight to and from the workers, the coordinator's update, the
/// rest); and the managed bytes each process allocates per step in steady state. Every
/// layout has the same torch thread budget (the cores). The first steps of each run (JIT, start-up,
/// allocator warm-up) are not timed; layouts run interleaved in alternating order and medians are
/// reported (of throughputs, and of ratios of runs made back to back), because this is a small
/// shared machine whose speed drifts by ±20%.
/// </summary>
public static class BenchOverheadCommand
{
    private static readonly Option<string> Dataset = Opt.Choice("dataset", "data set", "fashion-mnist", "fashion-mnist", "synthetic");
    private static readonly Option<string?> DataDir = Opt.Text("data-dir", $"IDX files [default: {FashionMnist.DefaultDirectory}]", "DIR");
    private static readonly Option<string> Model = Opt.Choice("model", "network", "mlp", "mlp", "cnn");
    private static readonly Option<int[]?> GlobalBatches = Opt.IntList("global-batches", "global batches [default: 256,1024 (mlp), 256 (cnn)]", 2, helpName: "B[,B…]");
    private static readonly Option<int?> Steps = Opt.Int("steps", "steps per measurement [default: 200]", 10, helpName: "S");
    private static readonly Option<int?> Repeats = Opt.Int("repeats", "measurements per layout [default: 5]", 1, helpName: "R");
    private static readonly Option<int?> WarmupSteps = Opt.Int("warmup-steps", "steps left out of each measurement [default: 20]", 1, helpName: "W");
    private static readonly Option<int?> Threads = Opt.Int("threads", "libtorch threads in all [default: all cores]", 1, 256, "T");
    private static readonly Option<bool> AkkaTransport = Opt.Switch("akka-transport", "also measure the processes with tensors inside Akka messages");
    private static readonly string[] LayoutKeys = ["plain", "local1", "local2", "local4", "cluster2p", "cluster2p_ring", "cluster1l1p", "halfspeed_declared", "halfspeed_capacity"];
    private static readonly Option<string[]?> OnlyLayouts = Opt.WordList("layouts", $"measure only these layouts (plain and local2 always run: the ratios' references) [default: all: {string.Join(",", LayoutKeys)}]",
        k => LayoutKeys.Contains(k), string.Join(", ", LayoutKeys), "L[,L…]");

    public static Command Create()
    {
        var command = new Command("overhead", "samples/s of the plain loop vs the local cluster and real processes (coordinator + workers), and allocation per step");
        foreach (var option in new Option[] { Dataset, DataDir, Model, GlobalBatches, Steps, Repeats, WarmupSteps, Threads, AkkaTransport, OnlyLayouts }) command.Options.Add(option);
        command.SetAction((parse, cancellation) => RunAsync(parse, cancellation));
        return command;
    }

    private enum Kind { InProcess, Processes }

    /// <param name="LocalWorkers">Processes: workers beside the coordinator; <paramref name="RemoteWorkers"/>: worker processes.</param>
    /// <param name="SlowLastWorker">Processes: the last worker node runs at 1/this of its speed (testing slowdown).</param>
    private sealed record Layout(string Name, string Key, Kind Kind, Engine Engine, int Workers, int ThreadsPerWorker,
        int LocalWorkers = 0, int RemoteWorkers = 0, string Transport = "dataplane", double SlowLastWorker = 1, string Split = "declared",
        string Reduce = "star");

    /// <param name="StepMs">Median step wall time; <paramref name="ComputeMs"/>, <paramref name="TransferMs"/>, <paramref name="UpdateMs"/>:
    /// medians of the step records' terms (StepTiming: the critical share's compute, its time in flight, the coordinator's update).</param>
    /// <param name="FoldMs">Median time the coordinator spent adding gradients as they arrived (not in the update, off the critical path).</param>
    /// <param name="CpuMsPerStep">In-process layouts: the process's CPU time (all threads, user + system) per timed step — the work a step
    /// costs, which a shared machine's drift moves far less than its wall time; NaN for layouts of several processes.</param>
    internal sealed record Measurement(double SamplesPerSecond, long CoordinatorBytesPerStep, long WorkerBytesPerStep,
        double StepMs, double ComputeMs, double TransferMs, double UpdateMs, double FoldMs, double CpuMsPerStep = double.NaN)
    {
        /// <summary>What a step costs beyond the critical share's compute.</summary>
        public double FixedMs => Math.Max(0, StepMs - ComputeMs);
        /// <summary>The fixed cost less its measured parts: the workers' handling beyond compute (parameter load, gradient copy), dispatch, bookkeeping.</summary>
        public double RestMs => Math.Max(0, FixedMs - TransferMs - UpdateMs);
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellation)
    {
        string dataset = parse.GetValue(Dataset)!;
        string modelName = parse.GetValue(Model)!;
        int[] batches = parse.List(GlobalBatches) ?? (modelName == "cnn" ? [256] : [256, 1024]);
        int steps = parse.GetValue(Steps) ?? 200;
        int repeats = parse.GetValue(Repeats) ?? 5;
        int warmup = parse.GetValue(WarmupSteps) ?? 20;
        int threads = parse.GetValue(Threads) ?? Environment.ProcessorCount;
        bool akkaTransport = parse.GetValue(AkkaTransport);
        string dataDirectory = parse.GetValue(DataDir) ?? FashionMnist.DefaultDirectory;

        var baseConfig = new TrainingConfig
        {
            Dataset = dataset,
            DataDirectory = dataDirectory,
            Model = modelName == "cnn" ? ModelSpec.Cnn(batchNorm: false) : ModelSpec.Mlp(),
            EvalEvery = 0,
            TrainEvalSamples = 0,
            Steps = warmup + steps,
        };
        var data = DataSource.Load(baseConfig.Dataset, baseConfig.DataDirectory, baseConfig.ValidationSize, baseConfig.Seed);
        TorchRuntime.Initialise(threads);
        float[] initial = ModelFactory.InitialParameters(baseConfig.Model, baseConfig.Seed);
        int half = Math.Max(1, threads / 2);
        // libtorch's thread count is per process; two workers share the cores, one half each.
        var layouts = new List<Layout>
        {
            new("plain", "plain", Kind.InProcess, Engine.Plain, 1, threads),
            new("local cluster, 1 worker", "local1", Kind.InProcess, Engine.Actors, 1, threads),
            new("local cluster, 2 workers", "local2", Kind.InProcess, Engine.Actors, 2, half),
            new("local cluster, 4 workers", "local4", Kind.InProcess, Engine.Actors, 4, Math.Max(1, threads / 4)),
            new("processes: coordinator + 2 worker nodes", "cluster2p", Kind.Processes, Engine.Actors, 2, half, RemoteWorkers: 2),
            new("processes: coordinator + 2 worker nodes, ring", "cluster2p_ring", Kind.Processes, Engine.Actors, 2, half, RemoteWorkers: 2, Reduce: "ring"),
            new("processes: coordinator with 1 local worker + 1 worker node", "cluster1l1p", Kind.Processes, Engine.Actors, 2, half, LocalWorkers: 1, RemoteWorkers: 1),
        };
        // A heterogeneous pair: one of the two worker nodes at half speed, shares by declared threads vs by measured speed.
        layouts.Add(new("processes: 2 worker nodes, one at half speed, declared shares", "halfspeed_declared", Kind.Processes, Engine.Actors, 2, half,
            RemoteWorkers: 2, SlowLastWorker: 2));
        layouts.Add(new("processes: 2 worker nodes, one at half speed, capacity shares", "halfspeed_capacity", Kind.Processes, Engine.Actors, 2, half,
            RemoteWorkers: 2, SlowLastWorker: 2, Split: "capacity"));
        if (akkaTransport)
            layouts.Add(new("processes: coordinator + 2 worker nodes, tensors through Akka", "cluster2p_akka", Kind.Processes, Engine.Actors, 2, half,
                RemoteWorkers: 2, Transport: "akka"));
        if (parse.List(OnlyLayouts) is { } only)
            layouts.RemoveAll(l => l.Key is not ("plain" or "local2") && !only.Contains(l.Key) && l.Key != "cluster2p_akka");

        Console.Out.WriteLine($"bench overhead: {baseConfig.Model} ({initial.Length} parameters), {dataset}, {steps} timed steps after {warmup} warm-up steps, median of {repeats} runs, {threads} torch threads in all, {Environment.ProcessorCount} cores, CPU kernels {MklDispatch.Kernels}");
        Console.Out.WriteLine();
        Console.Out.WriteLine("Fixed cost: median step − median compute of the critical share; in flight: its time to and from the worker beyond the worker's handling; update: the coordinator's average and optimizer step after the last result (in brackets: the adding of earlier results as they arrived, off the critical path); rest: what is left (the workers' parameter load and gradient copy, dispatch, bookkeeping).");
        Console.Out.WriteLine();
        Console.Out.WriteLine("| global batch | layout | samples/s (median) | min – max | ratio to plain | ratio to local 2 workers | step ms | compute ms | fixed ms | in flight ms | update ms (+ added as results arrived) | rest ms | CPU ms per step (cores busy) | coordinator process, bytes allocated per step | worker process, bytes per step |");
        Console.Out.WriteLine("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var json = new Dictionary<string, object> { ["model"] = modelName };
        foreach (int batch in batches)
        {
            var results = layouts.ToDictionary(l => l, _ => new List<Measurement>());
            for (int r = 0; r < repeats; r++)
            {
                // Alternate the order so that a slow drift of the shared machine favours no layout.
                var order = r % 2 == 0 ? layouts : Enumerable.Reverse(layouts).ToList();
                foreach (var layout in order)
                {
                    var config = baseConfig with { GlobalBatch = batch, Engine = layout.Engine, Workers = layout.Workers, Threads = layout.ThreadsPerWorker };
                    results[layout].Add(layout.Kind == Kind.InProcess
                        ? await MeasureInProcessAsync(config, data, initial, warmup, cancellation)
                        : await MeasureProcessesAsync(config, layout, warmup, cancellation));
                }
            }
            var plain = results[layouts[0]].Select(m => m.SamplesPerSecond).ToList();
            if (layouts.SingleOrDefault(l => l.Key == "cluster2p") is { } starLayout && layouts.SingleOrDefault(l => l.Key == "cluster2p_ring") is { } ringLayout)
            {
                var star = results[starLayout].Select(m => m.SamplesPerSecond).ToList();
                var ring = results[ringLayout].Select(m => m.SamplesPerSecond).ToList();
                json[$"ring_vs_star_b{batch}"] = Math.Round(Median(ring.Zip(star, (r, s) => r / s).ToList()), 3); // runs of the same repeat
            }
            var local2 = results[layouts.Single(l => l.Key == "local2")].Select(m => m.SamplesPerSecond).ToList();
            foreach (var layout in layouts)
            {
                var values = results[layout].Select(m => m.SamplesPerSecond).ToList();
                // Ratios of runs made back to back (same repeat) cancel most of the machine's drift.
                double toPlain = Median(values.Zip(plain, (v, p) => v / p).ToList());
                double toLocal2 = Median(values.Zip(local2, (v, p) => v / p).ToList());
                long coordinatorBytes = (long)Median(results[layout].Select(m => (double)m.CoordinatorBytesPerStep).ToList());
                string workerBytes = layout.Kind == Kind.Processes
                    ? ((long)Median(results[layout].Select(m => (double)m.WorkerBytesPerStep).ToList())).ToString("N0", CultureInfo.InvariantCulture)
                    : "(same process)";
                double Term(Func<Measurement, double> term) => Median(results[layout].Select(term).ToList());
                double stepMs = Term(m => m.StepMs), computeMs = Term(m => m.ComputeMs), fixedMs = Term(m => m.FixedMs),
                    transferMs = Term(m => m.TransferMs), updateMs = Term(m => m.UpdateMs), restMs = Term(m => m.RestMs), foldMs = Term(m => m.FoldMs);
                // Cores busy: CPU time per step over wall time per step (timed steps / samples/s), e.g. 2.0 = both cores of this machine.
                double cpuMs = layout.Kind == Kind.InProcess ? Term(m => m.CpuMsPerStep) : double.NaN;
                double coresBusy = cpuMs / (batch / Median(values) * 1000);
                string cpu = double.IsFinite(cpuMs) ? string.Create(CultureInfo.InvariantCulture, $"{cpuMs:F2} ({coresBusy:F2})") : "–";
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {batch} | {layout.Name} | {Median(values):F0} | {values.Min():F0} – {values.Max():F0} | {toPlain:F3} | {toLocal2:F3} | {stepMs:F2} | {computeMs:F2} | {fixedMs:F2} | {transferMs:F2} | {updateMs:F2} (+{foldMs:F2}) | {restMs:F2} | {cpu} | {coordinatorBytes:N0} | {workerBytes} |"));
                if (double.IsFinite(cpuMs)) json[$"{layout.Key}_cpu_ms_per_step_b{batch}"] = Math.Round(cpuMs, 3);
                json[$"{layout.Key}_samples_per_s_b{batch}"] = Math.Round(Median(values));
                json[$"{layout.Key}_vs_local2_b{batch}"] = Math.Round(toLocal2, 3);
                json[$"{layout.Key}_vs_plain_b{batch}"] = Math.Round(toPlain, 3);
                json[$"{layout.Key}_fixed_ms_b{batch}"] = Math.Round(fixedMs, 3);
                json[$"{layout.Key}_update_ms_b{batch}"] = Math.Round(updateMs, 3);
                json[$"{layout.Key}_fold_ms_b{batch}"] = Math.Round(foldMs, 3);
                // The names the step-cost issue asks for: the main job's shape (B 128) and the multi-node figures (B 1024).
                if (batch == 128 && layout.Key is "plain" or "local4") json[$"{layout.Key}_b128_samples_per_s"] = Math.Round(Median(values));
                if (batch == 128 && layout.Key == "local4")
                {
                    json["fixed_ms_local4_b128"] = Math.Round(fixedMs, 3);
                    json["update_ms"] = Math.Round(updateMs, 3);
                    json["local4_b128_vs_plain"] = Math.Round(toPlain, 3);
                }
                json[$"{layout.Key}_alloc_bytes_per_step_b{batch}"] = Math.Max(coordinatorBytes, layout.Kind == Kind.Processes
                    ? (long)Median(results[layout].Select(m => (double)m.WorkerBytesPerStep).ToList()) : 0);
                if (batch == (modelName == "mlp" ? 1024 : 256))
                {
                    if (layout.Key is "plain" or "local2" or "cluster2p") json[$"{layout.Key}_samples_per_s"] = Math.Round(Median(values));
                    if (layout.Key == "cluster2p") json["cluster2p_vs_local2"] = Math.Round(toLocal2, 3);
                }
            }
        }
        Console.Out.WriteLine();
        foreach (int batch in batches)
            if (json.TryGetValue($"halfspeed_capacity_samples_per_s_b{batch}", out var capacity) && json.TryGetValue($"halfspeed_declared_samples_per_s_b{batch}", out var declared))
                json[$"capacity_step_time_vs_declared_b{batch}"] = Math.Round((double)declared / (double)capacity, 3); // step time ratio = inverse throughput ratio
        Console.Out.WriteLine(JsonSerializer.Serialize(json));
        return 0;
    }

    /// <summary>Samples/s over the steps after the warm-up, measured from the step records' wall times.</summary>
    /// <param name="observe">Sees every step's record (the bench metrics command keeps one as a representative step).</param>
    internal static async Task<Measurement> MeasureInProcessAsync(TrainingConfig config, DataSplits data, float[] initial, int warmup, CancellationToken cancellation,
        Action<StepRecord>? observe = null)
    {
        TorchRuntime.Initialise(config.EffectiveThreads);
        long timedSamples = 0;
        var allocations = new List<double>();
        var timings = new List<StepRecord>();
        var clock = new Stopwatch();
        TimeSpan cpuAtStart = TimeSpan.Zero, cpuAtEnd = TimeSpan.Zero;
        void OnStep(StepRecord step, TrainingSession session)
        {
            observe?.Invoke(step);
            if (step.Step + 1 == warmup)
            {
                clock.Start(); // time from the end of the last warm-up step
                cpuAtStart = Process.GetCurrentProcess().TotalProcessorTime;
            }
            else if (step.Step + 1 > warmup)
            {
                timedSamples += step.GlobalBatch;
                timings.Add(step);
                if (step.AllocatedBytesByNode is { Count: > 0 } allocated) allocations.Add(allocated.Values.Sum());
            }
            if (session.Finished)
            {
                clock.Stop();
                cpuAtEnd = Process.GetCurrentProcess().TotalProcessorTime;
            }
        }
        var events = new RunEvents(Logger.None, "bench");
        await Engines.RunAsync(config, data, initial, events, "", OnStep, cancellation);
        return new Measurement(timedSamples / clock.Elapsed.TotalSeconds, (long)Median(allocations), 0,
            Median(timings.Select(t => t.Timing.StepMs).ToList()), Median(timings.Select(t => t.Timing.ComputeMs).ToList()),
            Median(timings.Select(t => t.Timing.TransferMs).ToList()), Median(timings.Select(t => t.Timing.UpdateMs).ToList()),
            Median(timings.Select(t => t.FoldMs).ToList()), (cpuAtEnd - cpuAtStart).TotalMilliseconds / Math.Max(1, timings.Count));
    }

    /// <summary>
    /// Starts the layout's node processes on loopback (this tool, <c>node</c>), waits for the
    /// coordinator to finish, and reads its event log: samples/s between the end of the warm-up and
    /// the last step (event timestamps), and the per-node allocation of each timed step.
    /// </summary>
    private static async Task<Measurement> MeasureProcessesAsync(TrainingConfig config, Layout layout, int warmup, CancellationToken cancellation)
    {
        int port = Processes.LoopbackPorts.Free();
        void Start(string runsDir, List<Processes.ChildProcess> nodes)
        {
            var coordinatorArgs = new List<string>
            {
                "node", "--role", "coordinator", "--port", port.ToString(CultureInfo.InvariantCulture),
                "--start-workers", (layout.LocalWorkers + layout.RemoteWorkers).ToString(CultureInfo.InvariantCulture),
                "--local-workers", layout.LocalWorkers.ToString(CultureInfo.InvariantCulture), "--tensor-transport", layout.Transport, "--split", layout.Split,
                "--reduce", layout.Reduce,
                "--model", config.Model.Name, "--dataset", config.Dataset, "--global-batch", config.GlobalBatch.ToString(CultureInfo.InvariantCulture),
                "--steps", config.Steps!.Value.ToString(CultureInfo.InvariantCulture), "--eval-every", "0", "--train-eval-samples", "0",
                "--threads", config.EffectiveThreads.ToString(CultureInfo.InvariantCulture), "--runs-dir", runsDir, "--run-id", "bench",
            };
            if (config.Dataset != "synthetic") coordinatorArgs.AddRange(["--data-dir", config.DataDirectory]);
            nodes.Add(new Processes.ChildProcess(coordinatorArgs));
            for (int i = 0; i < layout.RemoteWorkers; i++)
            {
                var workerArgs = new List<string> { "node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", config.EffectiveThreads.ToString(CultureInfo.InvariantCulture) };
                if (i == layout.RemoteWorkers - 1 && layout.SlowLastWorker > 1)
                    workerArgs.AddRange(["--testing-slowdown", layout.SlowLastWorker.ToString(CultureInfo.InvariantCulture)]);
                if (config.Dataset != "synthetic") workerArgs.AddRange(["--data-dir", config.DataDirectory]);
                nodes.Add(new Processes.ChildProcess(workerArgs));
            }
        }
        return await Processes.NodeRun.ToEndAsync($"bench overhead: '{layout.Name}'", Start, log => ReadLog(log, warmup), TimeSpan.FromMinutes(10), cancellation);
    }

    private static Measurement ReadLog(string path, int warmup)
    {
        var steps = File.ReadLines(path).Select(line => JsonDocument.Parse(line).RootElement)
            .Where(e => e.TryGetProperty("EventType", out var t) && t.GetString() == "StepCompleted")
            .OrderBy(e => e.GetProperty("Step").GetInt64()).ToList();
        var timed = steps.Where(e => e.GetProperty("Step").GetInt64() + 1 > warmup).ToList();
        var start = steps.First(e => e.GetProperty("Step").GetInt64() + 1 == warmup).GetProperty("@t").GetDateTimeOffset();
        var end = timed[^1].GetProperty("@t").GetDateTimeOffset();
        long samples = timed.Sum(e => (long)e.GetProperty("GlobalBatch").GetInt32());
        var coordinator = new List<double>();
        var worker = new List<double>();
        foreach (var step in timed)
        {
            var byNode = step.GetProperty("AllocatedBytesByNode").EnumerateObject().ToList();
            string self = byNode[^1].Name; // the coordinator writes its own node last
            foreach (var node in byNode) (node.Name == self ? coordinator : worker).Add(node.Value.GetInt64());
        }
        double Term(string name) => Median(timed.Select(e => e.TryGetProperty(name, out var v) ? v.GetDouble() : 0).ToList());
        return new Measurement(samples / (end - start).TotalSeconds, (long)Median(coordinator), worker.Count == 0 ? 0 : (long)Median(worker),
            Term("StepMs"), Term("ComputeMs"), Term("TransferMs"), Term("UpdateMs"), Term("FoldMs"));
    }

    /// <summary>The median of the finite values (Core's Statistics.Median), but 0 for no values at all (a figure a JSON report can hold).</summary>
    internal static double Median(IReadOnlyCollection<double> values) => values.Count == 0 ? 0 : Core.Numerics.Statistics.Median(values);
}
