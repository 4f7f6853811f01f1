using System.Globalization;

namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary><c>bench links</c> at CI size: the shaped link costs what the cost model says it costs.</summary>
public sealed class BenchLinksTests
{
    /// <summary>
    /// At 100 Mbit/s the MLP's 3.3 MB per step (2 hosts × parameters out and gradients in) take
    /// ~260 ms through the coordinator's link, 40× the step on an unshaped link: the measured step
    /// must be within [0.7, 1.4] of the model's (link term + the measured compute, update and wait;
    /// measured 0.90 here — the bucket's 64 KiB each way and TCP's own pacing are not in the model).
    /// </summary>
    [SimulatedHostsFact]
    public void A_shaped_link_slows_the_step_as_the_cost_model_predicts()
    {
        var outcome = CliProcess.Run(TimeSpan.FromMinutes(3), "bench", "links", "--models", "mlp", "--rates", "unshaped,100mbit", "--hosts", "2",
            "--global-batches", "256", "--steps", "5", "--warmup-steps", "2", "--dataset", "synthetic");
        Assert.True(outcome.ExitCode == 0, outcome.StdOut + outcome.StdErr);
        string[] Row(string rate) => outcome.StdOutLines.Single(l => l.StartsWith($"| mlp | {rate} | 2 | 256 |", StringComparison.Ordinal))
            .Split('|', StringSplitOptions.TrimEntries)[1..^1];
        double Number(string cell) => double.Parse(cell, CultureInfo.InvariantCulture);
        var unshaped = Row("unshaped");
        var shaped = Row("100mbit");
        Assert.Equal("—", unshaped[^1]);
        Assert.InRange(Number(shaped[10]), 3.2, 3.4); // MB per step: 2 × 203,530 floats × 4 B × 2 ways, plus sample ids
        Assert.True(Number(shaped[4]) > 10 * Number(unshaped[4]), $"100 Mbit/s step {shaped[4]} ms vs unshaped {unshaped[4]} ms");
        Assert.InRange(Number(shaped[^1]), 0.7, 1.4);
    }

    [Fact]
    public void A_rate_that_is_not_a_rate_is_refused_in_one_sentence()
    {
        var outcome = CliProcess.Run("bench", "links", "--rates", "1gbit,fast");
        BadInputTests.AssertRefused(outcome, "--rates must be a comma-separated list of tc rates such as 10gbit, 1gbit, 100mbit, or unshaped, not '1gbit,fast'");
    }
}
