using System.CommandLine;
using System.Globalization;
using System.Text;
using BatchCluster.Analysis;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Probing;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster probe</c>: step time, throughput and memory per batch size on this node, to
/// answer "do powers of two run faster here?" with data. Prints a table, writes probe.csv and probe.png.
/// </summary>
public static class ProbeCommand
{
    private static readonly Option<string> Model = Opt.Choice("model", "network", "mlp", ModelSpec.Names);
    private static readonly Option<int[]?> Hidden = Opt.IntList("hidden", "MLP hidden sizes [default: 256]", 1, ModelSpec.MaxHiddenSize);
    private static readonly Option<int[]?> BatchSizes = Opt.IntList("batch-sizes",
        "batch sizes to time [default: neighbours of powers of two 31…513, and 100, 1000]", 1);
    private static readonly Option<int?> Repeats = Opt.Int("repeats", "timed steps per batch size [default: 30]", 3, 100_000, "R");
    private static readonly Option<int?> Threads = Opt.Int("threads", "libtorch threads [default: all cores]", 1, 256, "T");
    private static readonly Option<string?> Out = Opt.Text("out", "where probe.csv and probe.png go [default: probe]", "DIR");
    private static readonly Option<string> Dataset = Opt.Choice("dataset", "data set", "fashion-mnist", DataSource.Names);
    private static readonly Option<string?> DataDir = Opt.Text("data-dir", $"IDX files [default: {FashionMnist.DefaultDirectory}]", "DIR");
    private static readonly Option<string?> Device = Opt.Text("device", $"where it computes: {Gpu.ComputeBackends.Help} [default: cpu]", "DEVICE");

    public static Command Create()
    {
        var command = new Command("probe", "step time, throughput and memory per batch size on this node (do powers of two run faster here?): a table, probe.csv, probe.png");
        foreach (var option in new Option[] { Model, Hidden, BatchSizes, Repeats, Threads, Out, Dataset, DataDir, Device }) command.Options.Add(option);
        command.SetAction(parse => Run(parse));
        return command;
    }

    private static int Run(ParseResult parse)
    {
        string modelName = parse.GetValue(Model)!;
        int[]? hidden = parse.List(Hidden);
        var model = modelName == "mlp" ? ModelSpec.Mlp(hidden ?? []) : ModelSpec.Cnn(modelName == "cnn-bn");
        int[] sizes = parse.List(BatchSizes) ?? BatchSizeProbe.DefaultBatchSizes;
        int repeats = parse.GetValue(Repeats) ?? 30;
        int threads = parse.GetValue(Threads) ?? Environment.ProcessorCount;
        string outDir = parse.GetValue(Out) ?? "probe";
        OutputPaths.CheckDirectory("--out", outDir);
        string device = parse.GetValue(Device) ?? "cpu";
        string deviceName = DeviceOption.Check(device, model);
        string dataset = parse.GetValue(Dataset)!;
        var data = DataSource.Load(dataset, parse.GetValue(DataDir) ?? FashionMnist.DefaultDirectory, FashionMnist.DefaultValidationSize, seed: 1).Train;
        if (sizes.Max() > data.Count)
            throw new UsageException($"--batch-sizes: {sizes.Max()} is more than the {data.Count} training samples");
        Directory.CreateDirectory(outDir);

        TorchRuntime.Initialise(threads);
        var results = BatchSizeProbe.Measure(model, data, sizes, repeats, createReplica: Gpu.ComputeBackends.ReplicasFor(device));

        var csv = new StringBuilder("batch_size,repeats,median_ms,p10_ms,p90_ms,samples_per_s,resident_mb,power_of_two\n");
        Console.Out.WriteLine($"probe: {model} on {dataset}, forward+backward+update, {repeats} timed steps per batch size, on {deviceName}{(device == "cpu" ? $" ({threads} threads)" : "")}");
        Console.Out.WriteLine("| batch | median ms | p10 – p90 ms | samples/s | resident MB | power of two |");
        Console.Out.WriteLine("| ---: | ---: | ---: | ---: | ---: | :---: |");
        foreach (var r in results)
        {
            bool power = ProbePlot.IsPowerOfTwo(r.BatchSize);
            double mb = r.ResidentBytes / (1024.0 * 1024.0);
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.BatchSize} | {r.MedianMs:F3} | {r.P10Ms:F3} – {r.P90Ms:F3} | {r.SamplesPerSecond:F0} | {mb:F0} | {(power ? "yes" : "")} |"));
            csv.Append(CultureInfo.InvariantCulture, $"{r.BatchSize},{r.Repeats},{r.MedianMs:F4},{r.P10Ms:F4},{r.P90Ms:F4},{r.SamplesPerSecond:F1},{mb:F1},{power}\n");
        }
        File.WriteAllText(Path.Combine(outDir, "probe.csv"), csv.ToString());
        var effects = PowerOfTwoEffect.From(results);
        if (effects.Count > 0)
        {
            Console.Out.WriteLine("power of two vs its neighbours (median step time; negative = the power of two is faster):");
            foreach (var e in effects)
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {e.BatchSize}: {100 * e.RelativeStepTime:+0.0;-0.0;+0.0} %"));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  mean over {effects.Count}: {100 * effects.Average(e => e.RelativeStepTime):+0.0;-0.0;+0.0} %"));
        }
        ProbePlot.WritePng(results.Select(r => new ProbePoint(r.BatchSize, r.SamplesPerSecond, r.MedianMs)).ToList(),
            $"{model}: training throughput per batch size ({threads} threads)", Path.Combine(outDir, "probe.png"));
        Console.Out.WriteLine($"wrote {Path.Combine(outDir, "probe.csv")} and {Path.Combine(outDir, "probe.png")}");
        return 0;
    }
}
