using BatchCluster.Core.Experiments;
using BatchCluster.Core.Schedules;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.Tests.Experiments;

public sealed class SweepGridTests
{
    private static readonly TrainingConfig Base = new() { LearningRate = 0.1, Seed = 3 };

    private static IReadOnlyList<SweepPoint> Expand(TrainingConfig config, RunBudget budget, int[]? batches = null, int[]? workers = null) =>
        SweepGrid.Expand(config, batches ?? [32, 256], workers ?? [1, 4], [null], [LrScaling.None, LrScaling.Linear], budget, 55_000, evalsPerEpoch: 4, out _);

    [Fact]
    public void Every_combination_gets_one_run_with_its_settings()
    {
        var points = Expand(Base, new RunBudget.Epochs(2));
        Assert.Equal(8, points.Count);
        Assert.Equal(8, points.Select(p => p.RunId).Distinct().Count());
        var linear = points.Single(p => p.Config is { GlobalBatch: 32, Workers: 4, LrScaling: LrScaling.Linear });
        Assert.Equal(0.1 * 32 / 256, linear.Config.Schedule.PeakLearningRate, 12);
        Assert.Equal(2, linear.Config.Epochs);
        Assert.Equal(55_000 / 32 / 4, linear.Config.EvalEvery);
        Assert.Equal(linear.RunId, linear.Config.RunId);
        Assert.StartsWith("mlp-b32-w4-share-linear-", linear.RunId);
    }

    [Fact]
    public void Run_ids_are_stable_and_change_with_any_setting()
    {
        var again = Expand(Base, new RunBudget.Epochs(2));
        Assert.Equal(Expand(Base, new RunBudget.Epochs(2)).Select(p => p.RunId), again.Select(p => p.RunId));
        var otherLr = Expand(Base with { LearningRate = 0.2 }, new RunBudget.Epochs(2));
        Assert.Empty(again.Select(p => p.RunId).Intersect(otherLr.Select(p => p.RunId)));
        var otherRunsDir = Expand(Base with { RunsDirectory = "elsewhere" }, new RunBudget.Epochs(2));
        Assert.Equal(again.Select(p => p.RunId), otherRunsDir.Select(p => p.RunId));
    }

    [Fact]
    public void A_sample_budget_gives_every_batch_the_same_samples_rounded_up_to_whole_steps()
    {
        var points = Expand(Base, new RunBudget.Samples(10_000), batches: [32, 256, 3000], workers: [1]);
        Assert.Equal([313L, 313, 40, 40, 4, 4], points.OrderBy(p => p.Config.GlobalBatch).Select(p => p.Config.Steps!.Value));
        Assert.All(points, p => Assert.Null(p.Config.Epochs));
    }

    [Fact]
    public void Warm_up_in_epochs_becomes_each_batch_sizes_own_step_count()
    {
        var points = SweepGrid.Expand(Base, [32, 4096], [1], [null], [LrScaling.Linear], new RunBudget.Epochs(3), 55_000, null, out _, warmupEpochs: 0.5);
        Assert.Equal([859, 7], points.Select(p => p.Config.WarmupSteps)); // 0.5 × 1718 and 0.5 × 13 steps per epoch
    }

    [Fact]
    public void The_plain_engine_gets_one_run_per_batch_whatever_the_worker_list()
    {
        var points = Expand(Base with { Engine = Engine.Plain }, new RunBudget.Steps(5), batches: [32, 64], workers: [1, 2, 4]);
        Assert.Equal(4, points.Count); // 2 batches × 2 scalings
        Assert.All(points, p => Assert.Equal(1, p.Config.Workers));
        Assert.Equal(4, points.Select(p => p.RunId).Distinct().Count());
    }

    [Fact]
    public void Impossible_combinations_are_left_out_and_named()
    {
        var points = SweepGrid.Expand(Base, [2, 60_000, 64], [4], [null], [LrScaling.None], new RunBudget.Steps(5), 55_000, null, out var skipped);
        Assert.Equal([64], points.Select(p => p.Config.GlobalBatch));
        Assert.Equal(2, skipped.Count);
        Assert.Contains(skipped, s => s.Contains("4 workers at global batch 2"));
        Assert.Contains(skipped, s => s.Contains("global batch 60000 is more than the 55000 training samples"));
    }
}
