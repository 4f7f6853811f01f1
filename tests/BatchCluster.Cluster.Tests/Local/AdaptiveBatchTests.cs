using BatchCluster.Core.BatchSizing;
using BatchCluster.Core.Models;
using BatchCluster.Core.Training;
using Xunit.Abstractions;
using static BatchCluster.Cluster.Tests.TrainingFixtures;

namespace BatchCluster.Cluster.Tests.Local;

/// <summary>--global-batch auto in the local simulated cluster (docs/adaptive-batch.md).</summary>
public class AdaptiveBatchTests(ITestOutputHelper output)
{
    /// <summary>
    /// Promise 1 when the batch changes: the local cluster (3 workers) chooses its batch by goodput, and the plain loop fed the
    /// same batch sequence (--batch-schedule of the cluster's changes) ends at the same parameters within 1e-4 — the bound and its
    /// reasoning of LocalClusterTrainingTests (only the order of additions differs). The run starts at 512 with B0 = 512 while the
    /// noise scale of an untrained MLP is ~50, so goodput favours a smaller batch by a wide margin: the batch does change.
    /// No LR scaling: AdaScale's gain reads the noise estimates, which differ with the layout (a share split differently gives
    /// another unbiased estimate), so only its batch sequence, not its learning rate, can be replayed by another layout.
    /// </summary>
    [Fact]
    public async Task A_run_whose_batch_changes_gives_the_plain_loops_parameters_fed_the_same_batches()
    {
        var data = FashionMnistData;
        var config = new TrainingConfig
        {
            Model = ModelSpec.Mlp(), GlobalBatch = 512, BaseBatch = 512, Adaptive = new AdaptiveBatch(32, 1024, AdaptEvery: 10),
            Steps = 60, Workers = 3, LearningRate = 0.1, Seed = 17, EvalEvery = 0, TrainEvalSamples = 0,
        };
        var sizes = new List<int>();
        var adaptive = await RunLocalAsync(config, data, onStep: (step, _) => sizes.Add(step.GlobalBatch));

        var changes = new List<BatchChange>();
        for (int step = 1; step < sizes.Count; step++)
            if (sizes[step] != sizes[step - 1]) changes.Add(new BatchChange(step, sizes[step]));
        output.WriteLine($"batch changes: {string.Join(", ", changes)}");
        Assert.NotEmpty(changes);
        Assert.True(changes.Count <= 6, "at most one change per 10-step window");

        var replay = config with { Adaptive = null, BatchSchedule = changes, Engine = Engine.Plain };
        var plain = RunPlain(replay, data);
        double d = MaxAbsDifference(plain.FinalParameters, adaptive.FinalParameters);
        output.WriteLine($"max |Δparam| after 60 steps: {d:E2}");
        Assert.True(d <= 1e-4, $"the plain loop fed the same batches differs by {d:E2}");
        Assert.True(MaxAbsDifference(ModelFactory.InitialParameters(config.Model, config.Seed), plain.FinalParameters) > 1e-2);
    }
}
