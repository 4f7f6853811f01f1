using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.EndToEnd.Tests.Analysis;

/// <summary>The experiment page's findings: sentences whose numbers come from the rows, checked against rows built to show them.</summary>
public sealed class FindingsTests
{
    private static RunRow Run(int batch, int workers = 1, long? stepsToTarget = null, double samplesPerSecond = 1000, double finalVal = 0.85,
        double gap = 0.01, double seconds = double.NaN, string id = "") => new(
        id.Length > 0 ? id : $"b{batch}-w{workers}", RunStatus.Completed, "actors", "mlp(256)", workers, batch, null, "none", 0.05, 100, 1,
        finalVal, finalVal, finalVal, finalVal + gap, gap, stepsToTarget, stepsToTarget * batch, seconds, samplesPerSecond, 1, 1, 0, 500, double.NaN, 0);

    [Fact]
    public void Steps_to_target_stop_falling_in_proportion_where_a_larger_batch_saves_less_than_two_thirds_of_its_share()
    {
        // 6,400 → 3,300 → 2,000 (each within 1.5× of halving), then 1,600 at B 256 where halving 2,000 gives 1,000 (1.6×).
        var rows = new[] { Run(32, stepsToTarget: 6400), Run(64, stepsToTarget: 3300), Run(128, stepsToTarget: 2000), Run(256, stepsToTarget: 1600) };
        var sentence = Assert.Single(Findings.ScalingLimit(rows, 0.85));
        Assert.Equal("mlp(256), 1 worker, lr none: steps to target fall nearly in proportion to the batch up to B 128 (6,400 → 2,000 steps); "
            + "from B 128 to B 256 they fall only to 80 % (2,000 → 1,600; in proportion: 1,000): diminishing returns.", sentence);

        var onTheLine = Assert.Single(Findings.ScalingLimit(rows.Take(3).ToArray(), 0.85));
        Assert.Contains("fall nearly in proportion to the batch from B 32 up to B 128 (6,400 → 2,000 steps)", onTheLine);
        Assert.Empty(Findings.ScalingLimit(rows, null));

        // A badly tuned smallest batch (far above the line) does not hide where returns diminish later.
        var noisyStart = new[] { Run(32, stepsToTarget: 9000), Run(64, stepsToTarget: 800), Run(128, stepsToTarget: 420), Run(256, stepsToTarget: 400) };
        Assert.Contains("from B 128 to B 256 they fall only to 95 %", Assert.Single(Findings.ScalingLimit(noisyStart, 0.85)));
    }

    [Fact]
    public void The_throughput_knee_is_the_batch_after_which_a_doubling_adds_less_than_ten_percent()
    {
        var rows = new[] { Run(32, samplesPerSecond: 10_000), Run(64, samplesPerSecond: 20_000), Run(128, samplesPerSecond: 40_000),
            Run(256, samplesPerSecond: 42_000), Run(512, samplesPerSecond: 43_000) };
        var sentence = Assert.Single(Findings.ThroughputKnee(rows));
        Assert.Contains("grows 2.00× per doubling up to B 128 (40,000 samples/s)", sentence);
        Assert.Contains("knee at B 128", sentence);

        var rising = Assert.Single(Findings.ThroughputKnee(rows.Take(3).ToArray()));
        Assert.Contains("still rises at the largest batch (20,000 → 40,000 samples/s from B 64 to 128)", rising);
    }

    [Fact]
    public void Medians_over_seeds_decide_the_best_accuracy_and_the_fastest_configuration()
    {
        // B 64: seeds at 0.86, 0.90, 0.87 → median 0.87; B 128: 0.88. The 0.90 outlier does not make B 64 the best.
        var rows = new[]
        {
            Run(64, finalVal: 0.86, seconds: 10, id: "a"), Run(64, finalVal: 0.90, seconds: 12, id: "b"), Run(64, finalVal: 0.87, seconds: 30, id: "c"),
            Run(128, finalVal: 0.88, seconds: 11), Run(256, finalVal: 0.80),
        };
        Assert.Equal("Best final validation accuracy 88.00 % at B 128 (mlp(256), 1 worker, lr none); lowest 80.00 % at B 256 (mlp(256), 1 worker, lr none).",
            Findings.Accuracy(rows));
        Assert.Equal("Fastest to 85.00 %: B 128 (mlp(256), 1 worker, lr none) in 11.0 s of training; 1 of 5 runs never reached it.",
            Findings.FastestToTarget(rows, 0.85));
        Assert.Null(Findings.FastestToTarget(rows, null));
        Assert.Equal("No run reached 85.00 % validation accuracy.", Findings.FastestToTarget([Run(64), Run(128)], 0.85));
    }

    [Fact]
    public void Series_are_judged_apart()
    {
        var rows = new[] { Run(32, samplesPerSecond: 1000), Run(64, samplesPerSecond: 2000), Run(32, workers: 4, samplesPerSecond: 1000), Run(64, workers: 4, samplesPerSecond: 1050) };
        var sentences = Findings.ThroughputKnee(rows);
        Assert.Equal(2, sentences.Count);
        Assert.StartsWith("mlp(256), 1 worker, lr none: throughput still rises", sentences[0]);
        Assert.StartsWith("mlp(256), 4 workers, lr none: throughput is flat from the smallest batch on", sentences[1]);
    }

    [Fact]
    public void Runs_of_one_global_batch_are_compared_with_each_other()
    {
        var rows = new[] { Run(1024, samplesPerSecond: 30_000, finalVal: 0.84, id: "equal"), Run(1024, samplesPerSecond: 22_500, finalVal: 0.83, id: "slow-host") };
        Assert.Equal(["Fastest run equal: 30,000 samples/s; slowest slow-host: 22,500 (25 % slower).", "Final validation accuracy from 83.00 % to 84.00 % over the 2 runs."],
            Findings.AmongRuns(rows));
        Assert.Empty(Findings.AmongRuns([rows[0]]));
    }
}
