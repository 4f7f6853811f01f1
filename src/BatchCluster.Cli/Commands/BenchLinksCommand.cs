using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;
using BatchCluster.Cli.Options;
using BatchCluster.Cli.Processes;
using BatchCluster.Core.Data;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench links</c>: what the network does to a step. For each model, link speed,
/// number of worker hosts and global batch, a coordinator and its workers run on simulated hosts
/// (scripts/sim-hosts.sh: a network namespace and address per node, every link shaped with tbf),
/// and the coordinator's event log gives the median step and its split (compute, transfer, update,
/// wait) and the bytes through the coordinator's link. Beside each measurement, the link term of
/// the cost model in docs/performance.md: every byte of the step passes the coordinator's link, the
/// parameters out and then the gradients in, so a link of L bit/s adds bytes × 8 / L to a step.
/// Needs root (network namespaces).
/// </summary>
public static class BenchLinksCommand
{
    private const string Unshaped = "unshaped";
    private static readonly Regex RatePattern = new(@"^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$", RegexOptions.CultureInvariant);

    private static readonly Option<string[]?> Models = Opt.WordList("models", "networks [default: mlp,cnn]", m => m is "mlp" or "cnn", "mlp and cnn", "M[,M…]");
    private static readonly Option<string[]?> Rates = Opt.WordList("rates", "link speeds: tc rates, or unshaped [default: unshaped,10gbit,1gbit,100mbit]",
        r => r == Unshaped || RatePattern.IsMatch(r), "tc rates such as 10gbit, 1gbit, 100mbit, or unshaped", "R[,R…]");
    private static readonly Option<int[]?> Hosts = Opt.IntList("hosts", "worker hosts [default: 2,4]", 1, 32);
    private static readonly Option<int[]?> GlobalBatches = Opt.IntList("global-batches", "global batches [default: 256,1024,4096]", 1, helpName: "B[,B…]");
    private static readonly Option<int?> Steps = Opt.Int("steps", "timed steps per measurement [default: 12]", 2, helpName: "S");
    private static readonly Option<int?> WarmupSteps = Opt.Int("warmup-steps", "steps left out of each measurement [default: 3]", 1, helpName: "W");
    private static readonly Option<string> Dataset = Opt.Choice("dataset", "data set", "fashion-mnist", "fashion-mnist", "synthetic");
    private static readonly Option<string?> DataDir = Opt.Text("data-dir", $"IDX files [default: {FashionMnist.DefaultDirectory}]", "DIR");

    public static Command Create()
    {
        var command = new Command("links", "step time and its split vs link speed, global batch and worker hosts, on simulated hosts (root), beside the cost model");
        foreach (var option in new Option[] { Models, Rates, Hosts, GlobalBatches, Steps, WarmupSteps, Dataset, DataDir }) command.Options.Add(option);
        command.SetAction((parse, cancellation) => RunAsync(parse, cancellation));
        return command;
    }

    /// <summary>Medians over the timed steps of one run.</summary>
    private sealed record Measurement(double StepMs, double ComputeMs, double TransferMs, double UpdateMs, double WaitMs, double BytesPerStep)
    {
        public double SamplesPerSecond(int batch) => batch / StepMs * 1000;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellation)
    {
        string[] models = parse.List(Models) ?? ["mlp", "cnn"];
        string[] rates = parse.List(Rates) ?? [Unshaped, "10gbit", "1gbit", "100mbit"];
        int[] hostCounts = parse.List(Hosts) ?? [2, 4];
        int[] batches = parse.List(GlobalBatches) ?? [256, 1024, 4096];
        int steps = parse.GetValue(Steps) ?? 12;
        int warmup = parse.GetValue(WarmupSteps) ?? 3;
        string dataset = parse.GetValue(Dataset)!;
        string dataDirectory = parse.GetValue(DataDir) ?? FashionMnist.DefaultDirectory;
        if (hostCounts.Max() > batches.Min())
            throw new UsageException($"--hosts {hostCounts.Max()} is more than --global-batches {batches.Min()}: some workers would get no sample");

        Console.Out.WriteLine($"bench links: coordinator + N worker hosts (a network namespace each, tbf-shaped links both ways), 1 torch thread per node, {dataset}, median of {steps} steps after {warmup} warm-up steps; {Environment.ProcessorCount} cores shared by all hosts");
        Console.Out.WriteLine("model link ms = bytes through the coordinator's link per step × 8 / link rate (docs/performance.md); model step = measured (compute + update + wait) + model link");
        Console.Out.WriteLine();
        Console.Out.WriteLine("| model | link | worker hosts | global batch | step ms | compute ms | transfer ms | update ms | wait ms | samples/s | MB per step | model link ms | model step ms | measured ÷ model |");
        Console.Out.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var json = new Dictionary<string, object>();
        foreach (string model in models)
            foreach (string rate in rates)
                foreach (int hosts in hostCounts)
                    foreach (int batch in batches)
                    {
                        var m = await MeasureAsync(model, rate, hosts, batch, steps, warmup, dataset, dataDirectory, cancellation);
                        double? linkMs = rate == Unshaped ? null : m.BytesPerStep * 8 / BitsPerSecond(rate) * 1000;
                        double? modelStep = linkMs is double l ? m.ComputeMs + m.UpdateMs + m.WaitMs + l : null;
                        string Cell(double? v, string format) => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "—";
                        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {model} | {rate} | {hosts} | {batch} | {m.StepMs:F1} | {m.ComputeMs:F1} | {m.TransferMs:F1} | {m.UpdateMs:F2} | {m.WaitMs:F1} | {m.SamplesPerSecond(batch):F0} | {m.BytesPerStep / 1e6:F2} | {Cell(linkMs, "F1")} | {Cell(modelStep, "F1")} | {Cell(m.StepMs / modelStep, "F2")} |"));
                        string key = $"{model}_{rate}_h{hosts}_b{batch}";
                        json[$"{key}_step_ms"] = Math.Round(m.StepMs, 2);
                        json[$"{key}_transfer_ms"] = Math.Round(m.TransferMs, 2);
                        json[$"{key}_samples_per_s"] = Math.Round(m.SamplesPerSecond(batch));
                        if (linkMs is double link) json[$"{key}_model_link_ms"] = Math.Round(link, 2);
                    }
        Console.Out.WriteLine();
        Console.Out.WriteLine(JsonSerializer.Serialize(json));
        return 0;
    }

    /// <summary>A tc rate in bits per second ("1gbit" → 1e9; tc's prefixes are decimal).</summary>
    public static double BitsPerSecond(string rate)
    {
        var match = RatePattern.Match(rate);
        if (!match.Success) throw new ArgumentException($"'{rate}' is not a tc rate", nameof(rate));
        double scale = match.Groups[2].Value switch { "kbit" => 1e3, "mbit" => 1e6, "gbit" => 1e9, _ => 1 };
        return double.Parse(rate[..^match.Groups[2].Value.Length], CultureInfo.InvariantCulture) * scale;
    }

    /// <summary>One run on fresh simulated hosts: the coordinator on host 0, worker k on host k; medians of the steps after the warm-up.</summary>
    private static async Task<Measurement> MeasureAsync(string model, string rate, int hosts, int batch, int steps, int warmup,
        string dataset, string dataDirectory, CancellationToken cancellation)
    {
        using var network = SimulatedNetwork.Up(hosts + 1, rate == Unshaped ? null : rate); // removed after the nodes have stopped
        var coordinator = network.Hosts[0];
        const string port = "4053"; // every host has its own ports: the README's default is free on each
        string[] dataDirFlag = dataset == "synthetic" ? [] : ["--data-dir", dataDirectory];
        void Start(string runsDir, List<ChildProcess> nodes)
        {
            nodes.Add(new ChildProcess(
            [
                "node", "--role", "coordinator", "--host", coordinator.Address, "--port", port, "--start-workers", hosts.ToString(CultureInfo.InvariantCulture),
                "--model", model, "--dataset", dataset, .. dataDirFlag, "--global-batch", batch.ToString(CultureInfo.InvariantCulture),
                "--steps", (warmup + steps).ToString(CultureInfo.InvariantCulture), "--eval-every", "0", "--train-eval-samples", "0", "--threads", "1",
                "--runs-dir", runsDir, "--run-id", "bench",
            ], coordinator.Namespace));
            foreach (var host in network.Hosts.Skip(1))
                nodes.Add(new ChildProcess(
                [
                    "node", "--role", "worker", "--host", host.Address, "--seed-nodes", $"{coordinator.Address}:{port}", "--threads", "1",
                    "--join-timeout", "60", .. dataDirFlag,
                ], host.Namespace));
        }
        Measurement Read(string log)
        {
            var timed = EventLogReader.Read(log).Steps.Where(s => s.Step >= warmup).ToList();
            double Median(Func<StepPoint, double> value) => RunRow.Median(timed.Select(value));
            return new Measurement(Median(s => s.StepMs), Median(s => s.ComputeMs), Median(s => s.TransferMs), Median(s => s.UpdateMs),
                Median(s => s.WaitMs), Median(s => s.BytesMoved));
        }
        return await NodeRun.ToEndAsync($"bench links: {model} B {batch} on {hosts} hosts at {rate}", Start, Read, TimeSpan.FromMinutes(15), cancellation);
    }
}
