using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using static BatchCluster.Core.Numerics.Statistics;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench bn</c>: what ghost batch norm (--bn-batch, docs/batch-norm.md) costs a worker's share of cnn-bn against
/// batch norm over each micro-batch (the behaviour without --bn-batch): the share's forward and backward on real Fashion-MNIST,
/// (a) batch norm over micro-batches of M, (b) ghost batches of K = M at micro-batch M (the same normalisation, plus the
/// statistics read back per ghost batch), (c) ghost batches of K in one pass over the whole share (K-sample slices normalised one
/// by one and joined), and (d) batch norm over the whole share in one pass, for scale. Kinds run in warmed blocks, the median of
/// the repeats is reported. The coordinator's side — one update of 192
/// running statistics per step — is not measurable beside a share.
/// </summary>
public static class BenchBatchNormCommand
{
    private static readonly Option<int?> Share = Opt.Int("share", "samples in the share [default: 128]", 2, helpName: "S");
    private static readonly Option<int?> Ghost = Opt.Int("bn-batch", "the ghost batch K, and the micro-batch of (a) and (b) [default: 32]", 2, helpName: "K");
    private static readonly Option<int?> Repeats = Opt.Int("repeats", "timed shares of each kind [default: 30]", 3, 10_000, "R");

    public static Command Create()
    {
        var command = new Command("bn", "what --bn-batch costs a cnn-bn share against batch norm over each micro-batch") { Share, Ghost, Repeats };
        command.SetAction(r => Run(r));
        return command;
    }

    private static int Run(ParseResult r)
    {
        int share = r.GetValue(Share) ?? 128, ghost = r.GetValue(Ghost) ?? 32, repeats = r.GetValue(Repeats) ?? 30;
        if (share % ghost != 0) throw new UsageException($"--share {share} is not a whole number of ghost batches of --bn-batch {ghost}: use a multiple of {ghost}");
        Core.Native.TorchRuntime.Initialise(Environment.ProcessorCount);
        var data = DataSource.Load("fashion-mnist", FashionMnist.DefaultDirectory, FashionMnist.DefaultValidationSize, 1);
        var spec = ModelSpec.Cnn(batchNorm: true);
        var parameters = ModelFactory.InitialParameters(spec, 1);
        using var micro = new ModelReplica(spec);
        using var ghosts = new ModelReplica(spec);
        ghosts.UseGhostBatches(ghost);
        micro.LoadParameters(parameters);
        ghosts.LoadParameters(parameters);
        var ids = Enumerable.Range(0, share).ToArray();
        var gradient = new float[micro.ParameterCount];
        var kinds = new (string Key, string Label, Func<double> Time)[]
        {
            ("micro", $"batch norm over micro-batches of {ghost}", () => micro.ComputeGradientSum(data.Train, ids, ghost, gradient).ComputeMilliseconds),
            ("ghost_micro", $"ghost batches of {ghost}, micro-batches of {ghost}", () => ghosts.ComputeGradientSum(data.Train, ids, ghost, gradient).ComputeMilliseconds),
            ("ghost_whole", $"ghost batches of {ghost}, the whole share in one pass", () => ghosts.ComputeGradientSum(data.Train, ids, share, gradient).ComputeMilliseconds),
            ("whole", "batch norm over the whole share in one pass", () => micro.ComputeGradientSum(data.Train, ids, share, gradient).ComputeMilliseconds),
        };
        var times = kinds.ToDictionary(k => k.Key, _ => new List<double>());
        // In blocks, each warmed up: a pass of another shape right before makes libtorch re-plan its kernels and re-allocate its
        // activations (interleaving kinds share by share measured whole-share passes 2-3x slower and erratic). Two rounds of
        // blocks, the second in reverse order, so drift favours no kind.
        for (int round = 0; round < 2; round++)
            foreach (var kind in round == 0 ? kinds : kinds.Reverse())
            {
                for (int i = 0; i < 3; i++) kind.Time();
                for (int i = 0; i < (repeats + 1) / 2; i++) times[kind.Key].Add(kind.Time());
            }

        Console.Out.WriteLine($"bench bn: a cnn-bn share of {share} samples, {Environment.ProcessorCount} torch threads, median of {repeats}");
        Console.Out.WriteLine("| kind | median ms | min – max | against (a) |");
        Console.Out.WriteLine("| --- | ---: | ---: | ---: |");
        var json = new Dictionary<string, object> { ["share"] = share, ["bn_batch"] = ghost };
        double baseline = Median(times["micro"]);
        foreach (var (key, label, _) in kinds)
        {
            var sorted = times[key].Order().ToList();
            double median = Median(sorted);
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {label} | {median:F2} | {sorted[0]:F2} – {sorted[^1]:F2} | {median / baseline:F3} |"));
            json[$"{key}_ms"] = Math.Round(median, 3);
        }
        json["ghost_micro_over_micro"] = Math.Round(Median(times["ghost_micro"]) / baseline, 4);
        json["ghost_whole_over_micro"] = Math.Round(Median(times["ghost_whole"]) / baseline, 4);
        json["ghost_whole_over_whole"] = Math.Round(Median(times["ghost_whole"]) / Median(times["whole"]), 4);
        Console.Out.WriteLine(JsonSerializer.Serialize(json));
        return 0;
    }
}
