using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using BatchCluster.Cli.Options;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench scale</c>: the coordinator's cost per worker node, measured. One process
/// holds a coordinator node and N worker nodes, each its own ActorSystem joined over loopback
/// Akka.Cluster, with tensors on the data plane: everything of a real cluster except separate
/// machines. The model is tiny (an MLP with 16 hidden units, 12.7k parameters) so that compute
/// and bandwidth vanish and what grows with N is the coordinator's per-worker work (messages,
/// frames, joining results). Prints the median step and its split for each N, and the slope of a
/// least-squares line step(N) = a + b·N: b is the per-worker cost of the cost model in
/// docs/performance.md.
/// </summary>
public static class BenchScaleCommand
{
    private static readonly Option<int[]?> Nodes = Opt.IntList("nodes", "worker node counts [default: 1,2,4,8,16]", 1);
    private static readonly Option<int?> Steps = Opt.Int("steps", "steps per count [default: 200]", 20, helpName: "S");
    private static readonly Option<int?> GlobalBatch = Opt.Int("global-batch", "[default: 256]", 1, helpName: "B");
    private static readonly Option<int?> Hidden = Opt.Int("hidden", "the tiny MLP's hidden size [default: 16]", 1, ModelSpec.MaxHiddenSize);

    public static Command Create()
    {
        var command = new Command("scale", "the coordinator's cost per worker node (1…16 worker nodes in one process, tiny model)") { Nodes, Steps, GlobalBatch, Hidden };
        command.SetAction((r, cancellation) => RunAsync(r, cancellation));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult r, CancellationToken cancellation)
    {
        int[] nodes = r.List(Nodes) ?? [1, 2, 4, 8, 16];
        int steps = r.GetValue(Steps) ?? 200;
        int batch = r.GetValue(GlobalBatch) ?? 256;
        int hidden = r.GetValue(Hidden) ?? 16;
        if (nodes.Max() > batch) throw new UsageException($"--nodes {nodes.Max()} is more than --global-batch {batch}: some workers would get no sample");
        TorchRuntime.Initialise(1);
        var config = new TrainingConfig
        {
            Dataset = "synthetic", Model = ModelSpec.Mlp([hidden]), GlobalBatch = batch, Steps = steps, EvalEvery = 0, TrainEvalSamples = 0,
        };
        var data = DataSource.Load(config.Dataset, config.DataDirectory, config.ValidationSize, config.Seed);
        float[] initial = ModelFactory.InitialParameters(config.Model, config.Seed);

        Console.Out.WriteLine($"bench scale: coordinator + N worker nodes in one process (ActorSystems over loopback, data plane), {config.Model} ({initial.Length} parameters), global batch {batch}, {steps} steps, median of the second half; {Environment.ProcessorCount} cores");
        Console.Out.WriteLine();
        Console.Out.WriteLine("| worker nodes | step ms | compute ms | transfer ms | update ms | wait ms |");
        Console.Out.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: |");
        var medians = new List<(int Nodes, double StepMs)>();
        foreach (int n in nodes)
        {
            var records = await RunAsync(config with { Workers = n }, data, initial, n, cancellation);
            var timed = records.Skip(records.Count / 2).ToList();
            double Median(Func<StepRecord, double> of) => timed.Select(of).Order().ElementAt(timed.Count / 2);
            double step = Median(r => r.Timing.StepMs);
            medians.Add((n, step));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {n} | {step:F2} | {Median(r => r.Timing.ComputeMs):F2} | {Median(r => r.Timing.TransferMs):F2} | {Median(r => r.Timing.UpdateMs):F2} | {Median(r => r.Timing.WaitMs):F2} |"));
        }
        double meanN = medians.Average(m => m.Nodes), meanT = medians.Average(m => m.StepMs);
        double slope = medians.Sum(m => (m.Nodes - meanN) * (m.StepMs - meanT)) / Math.Max(1e-9, medians.Sum(m => (m.Nodes - meanN) * (m.Nodes - meanN)));
        double intercept = meanT - slope * meanN;
        Console.Out.WriteLine();
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"least squares: step ≈ {intercept:F2} ms + {slope:F3} ms × worker nodes"));
        Console.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["per_worker_ms"] = Math.Round(slope, 4),
            ["fixed_ms"] = Math.Round(intercept, 3),
            ["parameters"] = initial.Length,
        }));
        return 0;
    }

    private static async Task<List<StepRecord>> RunAsync(TrainingConfig config, DataSplits data, float[] initial, int workers, CancellationToken cancellation)
    {
        var records = new List<StepRecord>();
        var completion = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var settings = new CoordinatorSettings(workers, workers, TimeSpan.FromSeconds(60), RunSpecs.Of(config), data.Validation.Count, data.Test.Count,
            WatchClusterMembership: true, TrainEvaluationCount: 0);
        var events = new RunEvents(Logger.None, $"scale-{workers}");
        var run = new CoordinatorRun(() => new TrainingSession(config, data.Train.Count, initial, events), null, settings, "", completion,
            (record, _) => records.Add(record));
        try
        {
            await using var nodes = await LoopbackNodes.StartAsync(RunSupervisor.Props(run), cancellation);
            for (int i = 0; i < workers; i++)
                await nodes.AddWorkerNodeAsync(proxy => WorkerActor.Props(proxy, new WorkerSettings("cpu", 1, _ => data)), cancellation);
            await completion.Task.WaitAsync(TimeSpan.FromMinutes(10), cancellation);
            return records;
        }
        catch (InvalidOperationException e) when (!completion.Task.IsCompleted)
        {
            throw new CommandFailedException($"bench scale: {e.Message}");
        }
    }
}
