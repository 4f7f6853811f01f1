using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;
using BatchCluster.Cli.Options;
using BatchCluster.Cli.Processes;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench links</c>: what the network does to a step. For each model, reduction
/// topology, link speed, number of worker hosts and global batch, a coordinator and its workers run
/// on simulated hosts (scripts/sim-hosts.sh: a network namespace and address per node, every link
/// shaped with tbf), and the coordinator's event log gives the median step and its split (compute,
/// transfer, update, wait) and the bytes through the coordinator's link and the busiest worker's.
/// Beside each measurement, the link term of the cost model in docs/performance.md: star — every
/// byte of the step passes the coordinator's link, the parameters out and then the gradients in,
/// so a link of L bit/s adds bytes × 8 / L; ring — every link carries its bytes both ways at once,
/// the busiest worker's (2N−1)/N models each way, so it adds one direction's bytes × 8 / L.
/// Needs root (network namespaces).
/// </summary>
public static class BenchLinksCommand
{
    private const string Unshaped = "unshaped";
    private static readonly Regex RatePattern = new(@"^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$", RegexOptions.CultureInvariant);

    private static readonly Option<string[]?> Models = Opt.WordList("models", "networks [default: mlp,cnn]", m => m is "mlp" or "cnn", "mlp and cnn", "M[,M…]");
    private static readonly Option<string[]?> Rates = Opt.WordList("rates", "link speeds: tc rates, or unshaped [default: unshaped,10gbit,1gbit,100mbit]",
        r => r == Unshaped || RatePattern.IsMatch(r), "tc rates such as 10gbit, 1gbit, 100mbit, or unshaped", "R[,R…]");
    private static readonly Option<string[]?> Reduce = Opt.WordList("reduce", "reduction topologies [default: star,ring]", r => r is "star" or "ring", "star and ring", "R[,R…]");
    private static readonly Option<int[]?> RingChunks = Opt.IntList("ring-chunks", "KiB per frame of the ring (ring rows only) [default: the train default]", 1, 1024 * 1024, "KIB[,KIB…]");
    private static readonly Option<bool> Ddp = Opt.Switch("ddp",
        "also PyTorch DDP (gloo ring all-reduce) on the same simulated hosts, one process per worker host, as a reference row (scripts/pytorch-ddp.py; needs python3-torch)");
    private static readonly Option<string> Precision = Opt.Choice("transfer-precision", "tensors on the wire", "fp32", "fp32", "bf16");
    private static readonly Option<int[]?> Hosts = Opt.IntList("hosts", "worker hosts [default: 2,4]", 1, 32);
    private static readonly Option<int[]?> GlobalBatches = Opt.IntList("global-batches", "global batches [default: 256,1024,4096]", 1, helpName: "B[,B…]");
    private static readonly Option<int?> Steps = Opt.Int("steps", "timed steps per measurement [default: 12]", 2, helpName: "S");
    private static readonly Option<int?> WarmupSteps = Opt.Int("warmup-steps", "steps left out of each measurement [default: 3]", 1, helpName: "W");
    private static readonly Option<string> Dataset = Opt.Choice("dataset", "data set", "fashion-mnist", "fashion-mnist", "synthetic");
    private static readonly Option<string?> DataDir = Opt.Text("data-dir", $"IDX files [default: {FashionMnist.DefaultDirectory}]", "DIR");

    public static Command Create()
    {
        var command = new Command("links", "step time and its split vs link speed, global batch and worker hosts, on simulated hosts (root), beside the cost model");
        foreach (var option in new Option[] { Models, Reduce, RingChunks, Ddp, Precision, Rates, Hosts, GlobalBatches, Steps, WarmupSteps, Dataset, DataDir }) command.Options.Add(option);
        command.SetAction((parse, cancellation) => RunAsync(parse, cancellation));
        return command;
    }

    /// <summary>Medians over the timed steps of one run.</summary>
    /// <param name="BytesPerStep">Through the coordinator's link, both directions.</param>
    /// <param name="WorkerLinkBytes">Through the busiest worker's link, both directions.</param>
    private sealed record Measurement(double StepMs, double ComputeMs, double TransferMs, double UpdateMs, double WaitMs, double BytesPerStep, double WorkerLinkBytes)
    {
        public double SamplesPerSecond(int batch) => batch / StepMs * 1000;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellation)
    {
        string[] models = parse.List(Models) ?? ["mlp", "cnn"];
        string[] reductions = parse.List(Reduce) ?? ["star", "ring"];
        int[] chunks = parse.List(RingChunks) ?? [TrainingConfig.DefaultRingChunkValues * sizeof(float) / 1024];
        // Each topology with its settings: star once, ring once per chunk size.
        var layouts = reductions.SelectMany(r => r == "ring" ? chunks.Select(c => (Reduce: r, ChunkKiB: (int?)c)) : [(Reduce: r, ChunkKiB: (int?)null)]).ToList();
        string precision = parse.GetValue(Precision)!;
        string[] rates = parse.List(Rates) ?? [Unshaped, "10gbit", "1gbit", "100mbit"];
        int[] hostCounts = parse.List(Hosts) ?? [2, 4];
        int[] batches = parse.List(GlobalBatches) ?? [256, 1024, 4096];
        bool ddp = parse.GetValue(Ddp);
        if (ddp) CheckPyTorch();
        int steps = parse.GetValue(Steps) ?? 12;
        int warmup = parse.GetValue(WarmupSteps) ?? 3;
        string dataset = parse.GetValue(Dataset)!;
        string dataDirectory = parse.GetValue(DataDir) ?? FashionMnist.DefaultDirectory;
        if (hostCounts.Max() > batches.Min())
            throw new UsageException($"--hosts {hostCounts.Max()} is more than --global-batches {batches.Min()}: some workers would get no sample");

        Console.Out.WriteLine($"bench links: coordinator + N worker hosts (a network namespace each, tbf-shaped links both ways), 1 torch thread per node, {dataset}, {precision} on the wire, median of {steps} steps after {warmup} warm-up steps; {Environment.ProcessorCount} cores shared by all hosts");
        Console.Out.WriteLine("MB coordinator / busiest worker = tensor bytes through that link per step, both directions; model link ms (docs/performance.md): star = coordinator's bytes × 8 / rate (its two directions one after the other), ring = busiest worker's bytes ÷ 2 × 8 / rate (both directions at once); model step = measured (compute + update + wait) + model link");
        Console.Out.WriteLine();
        Console.Out.WriteLine("| model | reduce | link | worker hosts | global batch | step ms | compute ms | transfer ms | update ms | wait ms | samples/s | MB coordinator | MB busiest worker | model link ms | model step ms | measured ÷ model |");
        Console.Out.WriteLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var json = new Dictionary<string, object>();
        foreach (string model in models)
            foreach (string rate in rates)
                foreach (int hosts in hostCounts)
                    foreach (int batch in batches)
                    {
                        foreach (var (reduce, chunkKiB) in layouts)
                        {
                            var m = await MeasureAsync(model, reduce, chunkKiB, precision, rate, hosts, batch, steps, warmup, dataset, dataDirectory, cancellation);
                            string name = chunkKiB is int kib && chunks.Length > 1 ? $"{reduce} {kib} KiB" : reduce;
                            double linkBytes = reduce == "ring" ? m.WorkerLinkBytes / 2 : m.BytesPerStep;
                            double? linkMs = rate == Unshaped ? null : linkBytes * 8 / BitsPerSecond(rate) * 1000;
                            double? modelStep = linkMs is double l ? m.ComputeMs + m.UpdateMs + m.WaitMs + l : null;
                            string Cell(double? v, string format) => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "—";
                            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"| {model} | {name} | {rate} | {hosts} | {batch} | {m.StepMs:F1} | {m.ComputeMs:F1} | {m.TransferMs:F1} | {m.UpdateMs:F2} | {m.WaitMs:F1} | {m.SamplesPerSecond(batch):F0} | {m.BytesPerStep / 1e6:F2} | {m.WorkerLinkBytes / 1e6:F2} | {Cell(linkMs, "F1")} | {Cell(modelStep, "F1")} | {Cell(m.StepMs / modelStep, "F2")} |"));
                            string key = $"{model}_{name.Replace(" KiB", "k").Replace(' ', '_')}_{rate}_h{hosts}_b{batch}";
                            json[$"{key}_step_ms"] = Math.Round(m.StepMs, 2);
                            json[$"{key}_transfer_ms"] = Math.Round(m.TransferMs, 2);
                            json[$"{key}_samples_per_s"] = Math.Round(m.SamplesPerSecond(batch));
                            json[$"{key}_coordinator_bytes"] = Math.Round(m.BytesPerStep);
                            json[$"{key}_worker_link_bytes"] = Math.Round(m.WorkerLinkBytes);
                            if (linkMs is double link) json[$"{key}_model_link_ms"] = Math.Round(link, 2);
                        }
                        if (ddp)
                        {
                            double ddpMs = await MeasureDdpAsync(model, rate, hosts, batch, steps, warmup, cancellation);
                            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"| {model} | pytorch-ddp | {rate} | {hosts} | {batch} | {ddpMs:F1} | — | — | — | — | {batch / ddpMs * 1000:F0} | — | — | — | — | — |"));
                            json[$"{model}_ddp_{rate}_h{hosts}_b{batch}_step_ms"] = Math.Round(ddpMs, 2);
                            json[$"{model}_ddp_{rate}_h{hosts}_b{batch}_samples_per_s"] = Math.Round(batch / ddpMs * 1000);
                        }
                    }
        Console.Out.WriteLine();
        Console.Out.WriteLine(JsonSerializer.Serialize(json));
        return 0;
    }

    private const string Python = "/usr/bin/python3";

    /// <summary>Debian's PyTorch computes with whatever libblas.so.3 is installed: the reference BLAS is ~20× slower than OpenBLAS.</summary>
    private const string OpenBlas = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3";

    private static void CheckPyTorch()
    {
        bool torch = false;
        try
        {
            using var probe = ChildProcess.Program(Python, ["-c", "import torch.distributed as d; assert d.is_gloo_available()"], networkNamespace: null);
            torch = probe.WaitForExitAsync(TimeSpan.FromMinutes(1)).GetAwaiter().GetResult() == 0;
        }
        catch (Exception e) when (e is CommandFailedException or System.ComponentModel.Win32Exception)
        {
            // no python3 at all: the same answer
        }
        if (!torch || !File.Exists(OpenBlas))
            throw new UsageException("--ddp needs PyTorch with gloo and OpenBLAS for /usr/bin/python3; install them with 'apt-get install python3-torch libopenblas0-pthread'");
    }

    /// <summary>PyTorch DDP on fresh simulated hosts, one rank per worker host (no coordinator): rank 0's median step.</summary>
    private static async Task<double> MeasureDdpAsync(string model, string rate, int hosts, int batch, int steps, int warmup, CancellationToken cancellation)
    {
        using var network = SimulatedNetwork.Up(hosts, rate == Unshaped ? null : rate);
        string script = Path.Combine(Path.GetDirectoryName(SimulatedNetwork.ScriptPath())!, "pytorch-ddp.py");
        // gloo binds the interface it is told (or loopback, where the other ranks are not).
        // OPENBLAS_CORETYPE is cleared: forced to Haswell (as this machine's environment does) OpenBLAS runs as slowly as MKL on AMD (docs/decisions.md).
        var environment = new Dictionary<string, string> { ["GLOO_SOCKET_IFNAME"] = "eth0", ["OPENBLAS_CORETYPE"] = "" };
        var ranks = new List<ChildProcess>();
        try
        {
            foreach (var host in network.Hosts)
                ranks.Add(ChildProcess.Program(Python,
                [
                    script, "--rank", host.Index.ToString(CultureInfo.InvariantCulture), "--world", hosts.ToString(CultureInfo.InvariantCulture),
                    "--master", network.Hosts[0].Address, "--model", model, "--global-batch", batch.ToString(CultureInfo.InvariantCulture),
                    "--steps", steps.ToString(CultureInfo.InvariantCulture), "--warmup-steps", warmup.ToString(CultureInfo.InvariantCulture),
                ], host.Namespace, environment));
            int exit = await ranks[0].WaitForExitAsync(TimeSpan.FromMinutes(15), cancellation);
            string? line = ranks[0].Output.LastOrDefault(l => l.StartsWith('{'));
            if (exit != 0 || line is null)
                throw new CommandFailedException($"bench links: PyTorch DDP ({model} B {batch} on {hosts} hosts at {rate}) exited with {exit}: {string.Join(" | ", ranks[0].Output.TakeLast(3))}");
            return JsonDocument.Parse(line).RootElement.GetProperty("step_ms").GetDouble();
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
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
    private static async Task<Measurement> MeasureAsync(string model, string reduce, int? chunkKiB, string precision, string rate, int hosts, int batch, int steps, int warmup,
        string dataset, string dataDirectory, CancellationToken cancellation)
    {
        using var network = SimulatedNetwork.Up(hosts + 1, rate == Unshaped ? null : rate); // removed after the nodes have stopped
        var coordinator = network.Hosts[0];
        const string port = "4053"; // every host has its own ports: the README's default is free on each
        string[] dataDirFlag = dataset == "synthetic" ? [] : ["--data-dir", dataDirectory];
        // Simulated hosts are network namespaces of this machine, reachable from it alone; without TLS the links carry what
        // PyTorch DDP's do in the comparison (docs/performance.md), so the nodes run --insecure.
        string[] insecure = ["--insecure"];
        void Start(string runsDir, List<ChildProcess> nodes)
        {
            nodes.Add(new ChildProcess(
            [
                "node", "--role", "coordinator", "--host", coordinator.Address, "--port", port, .. insecure, "--start-workers", hosts.ToString(CultureInfo.InvariantCulture),
                "--model", model, "--dataset", dataset, .. dataDirFlag, "--global-batch", batch.ToString(CultureInfo.InvariantCulture),
                "--steps", (warmup + steps).ToString(CultureInfo.InvariantCulture), "--eval-every", "0", "--train-eval-samples", "0", "--threads", "1",
                "--runs-dir", runsDir, "--run-id", "bench", "--reduce", reduce, "--transfer-precision", precision,
                .. (chunkKiB is int kib ? new[] { "--ring-chunk", kib.ToString(CultureInfo.InvariantCulture) } : []),
            ], coordinator.Namespace));
            foreach (var host in network.Hosts.Skip(1))
                nodes.Add(new ChildProcess(
                [
                    "node", "--role", "worker", "--host", host.Address, .. insecure, "--seed-nodes", $"{coordinator.Address}:{port}", "--threads", "1",
                    "--join-timeout", "60", .. dataDirFlag,
                ], host.Namespace));
        }
        Measurement Read(string log)
        {
            var timed = EventLogReader.Read(log).Steps.Where(s => s.Step >= warmup).ToList();
            double Median(Func<StepPoint, double> value) => RunRow.Median(timed.Select(value));
            return new Measurement(Median(s => s.StepMs), Median(s => s.ComputeMs), Median(s => s.TransferMs), Median(s => s.UpdateMs),
                Median(s => s.WaitMs), Median(s => s.BytesMoved), Median(s => s.WorkerLinkBytes));
        }
        return await NodeRun.ToEndAsync($"bench links: {model} {reduce} B {batch} on {hosts} hosts at {rate}", Start, Read, TimeSpan.FromMinutes(15), cancellation);
    }
}
