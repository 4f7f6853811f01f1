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

    /// <summary>
    /// One worker computes each step as one share, which alone gives no noise estimate; where the run needs one (AdaScale here,
    /// --global-batch auto the same) the coordinator asks for the share in two halves with their norms (ShareHalves), cut as the
    /// plain loop cuts its batch. So a one-worker cluster with AdaScale estimates the noise on every step and ends at the plain
    /// loop's parameters: the same halves give the same estimates, the same gains, and the same sums (within the 1e-4 of
    /// LocalClusterTrainingTests; measured 0). Fails if the halves are not asked for (no estimate: every gain 1, the plain loop's
    /// are not) or cut elsewhere (other estimates, other rates).
    /// </summary>
    [Fact]
    public async Task One_worker_estimates_the_noise_from_its_shares_halves_as_the_plain_loop_does()
    {
        var data = FashionMnistData;
        var config = new TrainingConfig
        {
            Model = ModelSpec.Mlp(), GlobalBatch = 512, BaseBatch = 128, LrScaling = Core.Schedules.LrScaling.AdaScale,
            Steps = 30, Workers = 1, LearningRate = 0.05, Seed = 5, EvalEvery = 0, TrainEvalSamples = 0,
        };
        var cluster = new List<StepRecord>();
        var local = await RunLocalAsync(config, data, onStep: (step, _) => cluster.Add(step));
        var plainSteps = new List<StepRecord>();
        var plain = RunPlain(config with { Engine = Engine.Plain }, data, onStep: (step, _) => plainSteps.Add(step));

        Assert.All(cluster, step => Assert.True(double.IsFinite(step.NoiseScale.TraceSigma), $"step {step.Step} has no noise estimate"));
        Assert.Contains(cluster, step => step.Sizing is { LrGain: > 1.01 });
        Assert.Equal(plainSteps.Select(s => s.Sizing!.Value.LrGain), cluster.Select(s => s.Sizing!.Value.LrGain));
        double d = MaxAbsDifference(plain.FinalParameters, local.FinalParameters);
        output.WriteLine($"max |Δparam| after 30 steps: {d:E2}; gains {string.Join(", ", cluster.Select(s => s.Sizing!.Value.LrGain.ToString("F3")))}");
        Assert.True(d <= 1e-4, $"the one-worker cluster differs from the plain loop by {d:E2}");
    }
}
