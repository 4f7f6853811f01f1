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

    /// <summary>
    /// Five worker nodes reduce by ring; one node dies in the middle of its reduce-scatter (step 8),
    /// another in the middle of its all-gather (step 16): its ring breaks, the coordinator re-forms
    /// it from the survivors (a lost member's finished shares are re-planned onto them, a survivor
    /// whose all-gather broke gets the whole model), and every step still commits exactly its global
    /// batch, within 1e-4 of the plain loop (only the order of additions changed).
    /// </summary>
    [Fact]
    public async Task Members_dying_mid_reduce_scatter_and_mid_all_gather_lose_no_sample()
    {
        var config = Ring(24) with { Optimizer = new Core.Optimizers.OptimizerSettings(Core.Optimizers.OptimizerKind.Sgd) };
        var plain = RunPlain(config with { Reduce = ReduceTopology.Star }, FashionMnistData);
        var events = new EventCollector();
        await using var cluster = await InProcessCluster.StartAsync(config, FashionMnistData, minWorkers: 1, events.Run("ring-faults"), startWorkers: 5);
        for (int i = 0; i < 3; i++) await cluster.AddWorkerAsync();
        // The hook holds the member where it is until its node is gone, as a crash at that point would.
        var reached = new[] { new TaskCompletionSource(), new TaskCompletionSource() };
        var gone = new[] { new ManualResetEventSlim(), new ManualResetEventSlim() };
        Action<long, string> DieAt(int which, long step, string phase) => (s, p) =>
        {
            if (s != step || p != phase || !reached[which].TrySetResult()) return;
            gone[which].Wait(RunTimeout);
        };
        var midReduce = await cluster.AddWorkerAsync(DieAt(0, 8, "reduce"));
        var midGather = await cluster.AddWorkerAsync(DieAt(1, 16, "gather"));
        try
        {
            await reached[0].Task.WaitAsync(RunTimeout);
            await midReduce.Terminate();
            gone[0].Set();
            await reached[1].Task.WaitAsync(RunTimeout);
            await midGather.Terminate();
            gone[1].Set();
            var result = await cluster.Completion.Task.WaitAsync(RunTimeout);

            double difference = MaxAbsDifference(plain.FinalParameters, result.FinalParameters);
            output.WriteLine($"max |Δparam| vs plain after 24 ring steps with two members killed mid-reduction: {difference:E2}");
            foreach (var e in events.OfType("ReductionAborted").Concat(events.OfType("RingFormed"))) output.WriteLine(e.RenderMessage());
            Assert.True(difference <= 1e-4, $"differs by {difference:E2}");
            Assert.Equal(Enumerable.Range(0, 24), cluster.Steps.Select(s => (int)s.Step));
            Assert.All(cluster.Steps, s => Assert.Equal(128, s.Shares.Sum()));
            Assert.Equal(2, events.OfType("WorkerLeft").Count());
            Assert.Contains(events.OfType("ReductionAborted"), e => (long)((Serilog.Events.ScalarValue)e.Properties["Step"]).Value! == 8);
            Assert.Equal(3, cluster.Steps[^1].Shares.Length);
            // The first ring and one after each loss; and one more when a survivor's report that the member killed mid
            // all-gather broke its all-gather arrives after the ring without that member was formed (that report marks the
            // ring faulty, so the next step forms a new one). Which comes first is timing: both are correct. A new ring's
            // reason is the loss, or whichever survivor's failure report reached the coordinator before the loss did
            // (the reason the reduction was abandoned).
            string ReasonOf(Serilog.Events.LogEvent e) => ((Serilog.Events.ScalarValue)e.Properties["Reason"]).Value!.ToString()!;
            var rings = events.OfType("RingFormed").Select(ReasonOf).ToList();
            var abandoned = events.OfType("ReductionAborted").Select(ReasonOf).ToHashSet();
            Assert.InRange(rings.Count, 3, 4);
            Assert.All(rings.Skip(1), r => Assert.True(r.Contains("left the ring") || r.Contains("all-gather of step") || abandoned.Contains(r), r));
        }
        catch
        {
            foreach (var e in events.Events) output.WriteLine(e.RenderMessage()); // what the run did, to see why it did not end
            throw;
        }
        finally
        {
            foreach (var g in gone) g.Set();
        }
    }
}

