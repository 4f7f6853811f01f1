using BatchCluster.Core.BatchSizing;

namespace BatchCluster.Core.Tests.BatchSizing;

public class GoodputPlannerTests
{
    [Fact]
    public void Candidates_are_geometric_within_the_range_and_include_both_ends()
    {
        var planner = new GoodputPlanner(32, 1000, 256);
        Assert.Equal(32, planner.Candidates[0]);
        Assert.Equal(1000, planner.Candidates[^1]);
        for (int i = 1; i < planner.Candidates.Count - 1; i++)
            Assert.InRange((double)planner.Candidates[i] / planner.Candidates[i - 1], 1.15, 1.23); // 2^(1/4) ≈ 1.19, rounded
    }

    /// <summary>
    /// t(M) = f + b·M and E(M) = (φ + M0)/(φ + M) make goodput ∝ M / ((f + bM)(φ + M)), largest at M* = √(φ f / b). The planner
    /// must pick the candidate a brute-force search picks, and the choice must grow with the fixed cost (a slow link) and the noise.
    /// </summary>
    [Theory]
    [InlineData(2.0, 0.01, 100.0)]
    [InlineData(20.0, 0.01, 100.0)]
    [InlineData(2.0, 0.01, 2000.0)]
    public void Chooses_the_candidate_of_largest_goodput(double fixedMs, double msPerSample, double noiseScale)
    {
        var planner = new GoodputPlanner(16, 8192, 256);
        var terms = new ThroughputTerms(msPerSample, 0, fixedMs, 0);
        var decision = planner.Decide(16, terms, noiseScale);
        int brute = planner.Candidates.MaxBy(m => m / terms.StepMs(m) * (noiseScale + 256) / (noiseScale + m));
        Assert.Equal(brute, decision.Chosen);
        double optimum = Math.Sqrt(noiseScale * fixedMs / msPerSample);
        Assert.InRange(decision.Chosen, optimum / 1.3, optimum * 1.3);
    }

    [Fact]
    public void A_gain_under_five_percent_keeps_the_batch()
    {
        var planner = new GoodputPlanner(16, 8192, 256);
        var terms = new ThroughputTerms(0.01, 0, 2.0, 0);
        const double noise = 100;
        int best = planner.Decide(16, terms, noise).Chosen;
        // A neighbour of the optimum predicts less than 5 % below it: staying there is kept.
        int neighbour = planner.Candidates[planner.Candidates.ToList().IndexOf(best) + 1];
        Assert.True(planner.Goodput(terms, best, noise) < 1.05 * planner.Goodput(terms, neighbour, noise));
        var decision = planner.Decide(neighbour, terms, noise);
        Assert.False(decision.Changed);
        Assert.Equal(neighbour, decision.Chosen);
    }

    /// <summary>No A → B → A within three decisions, even when the estimates swing back.</summary>
    [Fact]
    public void A_batch_just_left_is_not_chosen_again_within_three_decisions()
    {
        var planner = new GoodputPlanner(16, 8192, 256);
        var smallWins = new ThroughputTerms(0.01, 0, 0.5, 0);
        var largeWins = new ThroughputTerms(0.01, 0, 50, 0);
        int small = planner.Decide(4096, smallWins, 100).Chosen;
        int large = planner.Decide(small, largeWins, 100).Chosen;
        Assert.True(large > small);
        // Decisions 3 to 5 would return to the small batch (asked from the large one each time): it is barred, a neighbour is taken.
        for (int i = 0; i < GoodputPlanner.NoReturnWindows; i++)
        {
            int chosen = planner.Decide(large, smallWins, 100).Chosen;
            Assert.NotEqual(small, chosen);
            Assert.True(chosen < large);
        }
        Assert.Equal(small, planner.Decide(large, smallWins, 100).Chosen); // decision 6: free again
    }
}
