using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.EndToEnd.Tests.Analysis;

public sealed class RunRowTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 5, 0, 0, TimeSpan.Zero);

    private static StepPoint Step(long step, double secondsAfterStart, double stepMs = 10, params int[] shares) =>
        new(step, 0, 1, 0.1, 1, stepMs, 5, 1, 1, 1, 100, 0, 100, double.NaN, double.NaN, double.NaN, shares, Start.AddSeconds(secondsAfterStart));

    [Fact]
    public void The_median_plan_takes_each_position_over_the_most_common_number_of_shares()
    {
        // Capacity shares drifting with measured speeds, and one step re-planned onto a single worker.
        var steps = new[] { Step(0, 1, 10, 700, 324), Step(1, 2, 10, 680, 344), Step(2, 3, 10, 1024), Step(3, 4, 10, 690, 334), Step(4, 5, 10, 660, 364) };
        Assert.Equal("685/339", RunRow.MedianSharesOf(steps));
        Assert.Equal("", RunRow.MedianSharesOf([Step(0, 1)]));
    }

    /// <summary>
    /// A multi-node run waits for its workers after RunStarted (here 12 s): time to target counts
    /// from the start of the first step (logged at 12.5 s after a 500 ms step, so started at 12 s).
    /// </summary>
    [Fact]
    public void Time_to_target_counts_from_the_first_step_not_from_the_start_up()
    {
        var info = new RunInfo("r", 6, "cluster", 2, "mlp(256)", 64, null, "linear", 0.05, 0.0125, 10, "momentum", 859, 1000, Start);
        var steps = new[] { Step(0, 12.5, 500), Step(1, 13), Step(2, 14) };
        var evaluations = new[]
        {
            new EvalPoint(1, 0.1, "validation", 0.6, 0.80, double.NaN, Start.AddSeconds(13.5)),
            new EvalPoint(2, 0.2, "validation", 0.5, 0.86, double.NaN, Start.AddSeconds(20)),
        };
        var row = RunRow.From(new RunLog("events.clef", info, steps, evaluations, null, null, 0, 0), targetAccuracy: 0.85);
        Assert.Equal(2, row.StepsToTarget);
        Assert.Equal(8.0, row.SecondsToTarget, 9);
    }

    /// <summary>Runs of the multi-node cluster form one series per host count, and one more per reduction topology (schema 8).</summary>
    [Fact]
    public void Ring_runs_form_series_of_their_own()
    {
        var star = new RunInfo("s", 7, "cluster", 2, "mlp(256)", 64, null, "linear", 0.05, 0.0125, 0, "momentum", 859, 1000, Start);
        var ring = star with { RunId = "r", SchemaVersion = 8, Reduce = "ring" };
        string Series(RunInfo info) => RunRow.From(new RunLog("events.clef", info, [Step(0, 1)], [], null, null, 0, 0), targetAccuracy: null).SeriesKey;
        Assert.Equal("mlp(256), 2 worker nodes, lr linear", Series(star));
        Assert.Equal("mlp(256), 2 worker nodes, ring, lr linear", Series(ring));
    }

    /// <summary>Each ghost batch of batch norm (schema 13, docs/batch-norm.md) is a series of its own: it is a variable of the experiment.</summary>
    [Fact]
    public void Each_ghost_batch_is_a_series_of_its_own()
    {
        var micro = new RunInfo("m", 13, "plain", 1, "cnn-bn", 512, null, "linear", 0.02, 0.08, 0, "momentum", 107, 1000, Start);
        var ghost = micro with { RunId = "g", BnBatch = 32 };
        string Series(RunInfo info) => RunRow.From(new RunLog("events.clef", info, [Step(0, 1)], [], null, null, 0, 0), targetAccuracy: null).SeriesKey;
        Assert.Equal("cnn-bn, 1 worker, lr linear", Series(micro));
        Assert.Equal("cnn-bn, 1 worker, lr linear, bn 32", Series(ghost));
    }

    /// <summary>
    /// A run whose batch varies (schema 12) is a series of its own, off the plots against batch size (global batch 0), and counts
    /// its samples, epochs and throughput from each step's batch: 3 steps of 256 then 2 of 1024 are 2,816 samples.
    /// </summary>
    [Fact]
    public void An_adaptive_run_is_its_own_series_and_counts_each_steps_batch()
    {
        var info = new RunInfo("a", 12, "actors", 4, "mlp(256)", 256, null, "adascale", 0.05, 0.05, 0, "momentum", 214, 1070, Start,
            BatchPolicy: "auto 32:4096", TrainSamples: 55_000);
        int[] batches = [256, 256, 256, 1024, 1024];
        var steps = batches.Select((b, i) => Step(i, i + 1, 10) with { GlobalBatch = b }).ToArray();
        var evaluations = new[] { new EvalPoint(4, 0.05, "validation", 0.5, 0.86, double.NaN, Start.AddSeconds(5)) };
        var row = RunRow.From(new RunLog("events.clef", info, steps, evaluations, null, null, 0, 0), targetAccuracy: 0.85);
        Assert.Equal(0, row.GlobalBatch);
        Assert.Equal("auto 32:4096", row.BatchLabel);
        Assert.Equal("mlp(256), 4 workers, lr adascale, batch auto 32:4096", row.SeriesKey);
        Assert.Equal(256 * 3 + 1024, row.SamplesToTarget); // the steps before step 4
        Assert.Equal(2816.0 / 55_000, row.Epochs, 9);
        Assert.Equal(2816 / 0.05, row.SamplesPerSecond, 6); // five steps of 10 ms
    }
}
