using BatchCluster.Core.Models;
using BatchCluster.Core.Training;
using Xunit.Abstractions;
using static BatchCluster.Cluster.Tests.TrainingFixtures;

namespace BatchCluster.Cluster.Tests.MultiNode;

/// <summary>
/// <c>--reduce ring</c> across real nodes in this process (one ActorSystem each, Akka.Remote and the
/// data plane over loopback TCP, ring links between the workers): exact against the plain loop,
/// bitwise reproducible, one model each way through the coordinator's link whatever the number of
/// workers, and faults in the middle of a reduction lose no sample.
/// </summary>
public class RingReductionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);
    private static readonly int P = ModelFactory.LayoutOf(ModelSpec.Mlp()).TotalCount;

    private static TrainingConfig Ring(long steps, int chunkValues = 16_384) => new()
    {
        Model = ModelSpec.Mlp(),
        GlobalBatch = 128,
        Steps = steps,
        LearningRate = 0.1,
        Optimizer = new Core.Optimizers.OptimizerSettings(Core.Optimizers.OptimizerKind.Momentum),
        Seed = 17,
        EvalEvery = 0,
        Workers = 4,
        Reduce = ReduceTopology.Ring,
        RingChunkValues = chunkValues,
    };

    private async Task<(RunResult Result, List<StepRecord> Steps, EventCollector Events)> RunAsync(TrainingConfig config, int workers)
    {
        var events = new EventCollector();
        await using var cluster = await InProcessCluster.StartAsync(config, FashionMnistData, minWorkers: workers, events.Run("ring"));
        for (int i = 0; i < workers; i++) await cluster.AddWorkerAsync();
        try
        {
            var result = await cluster.Completion.Task.WaitAsync(RunTimeout);
            return (result, cluster.Steps, events);
        }
        catch
        {
            foreach (var e in events.Events) output.WriteLine(e.RenderMessage()); // what the run did, to see why it did not end
            throw;
        }
    }

    /// <summary>
    /// Four worker nodes reduce by ring for 30 steps and end within 1e-4 of the plain loop (the bound
    /// of every cross-layout test: only the order of additions differs); the same run twice is
    /// bitwise identical (the ring fixes the order); the coordinator's link carries the model once
    /// each way per step (plus the sample ids), and each worker's about 2 × 7/4 models.
    /// </summary>
    [Fact]
    public async Task Four_worker_nodes_reducing_by_ring_give_the_plain_loops_parameters_bitwise_twice()
    {
        var config = Ring(30);
        var plain = RunPlain(config with { Reduce = ReduceTopology.Star }, FashionMnistData);
        var first = await RunAsync(config, workers: 4);
        var second = await RunAsync(config, workers: 4);

        double difference = MaxAbsDifference(plain.FinalParameters, first.Result.FinalParameters);
        output.WriteLine($"max |Δparam| vs plain after 30 ring steps over 4 worker nodes: {difference:E2}");
        Assert.True(difference <= 1e-4, $"differs by {difference:E2}");
        Assert.Equal(first.Result.FinalParameters, second.Result.FinalParameters);
        Assert.Equal(30, first.Steps.Count);
        Assert.All(first.Steps, s => Assert.Equal(4, s.Shares.Length));
        // Step 0 sends every worker the whole model (nobody holds it yet); from then on the ring carries it.
        Assert.All(first.Steps.Skip(1), s => Assert.Equal(2L * 4 * P + 4L * 128, s.BytesMoved));
        Assert.All(first.Steps.Skip(1), s => Assert.InRange(s.WorkerLinkBytes!.Value, 2L * 4 * P * 7 / 4 - 64, 2L * 4 * P * 7 / 4 + 4L * 128 + 64));
        var formed = Assert.Single(first.Events.OfType("RingFormed"));
        Assert.Contains("first ring", formed.RenderMessage());
    }
}
