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
    /// t(M) = f + b·M and E(M) = (φ + M0)/(φ + M) make goodput ∝ M / ((f + bM)(φ + M)), largest at M* = √(φ f / b). Following its
    /// own decisions (one octave at most each) from the smallest batch, the planner must settle within the hysteresis of the
    /// candidate a brute-force search picks, near M*; and M* grows with the fixed cost (a slow link) and the noise.
    /// </summary>
    [Theory]
    [InlineData(2.0, 0.01, 100.0)]
    [InlineData(20.0, 0.01, 100.0)]
    [InlineData(2.0, 0.01, 2000.0)]
    public void Settles_on_the_candidate_of_largest_goodput(double fixedMs, double msPerSample, double noiseScale)
    {
        var planner = new GoodputPlanner(16, 8192, 256);
        var terms = new ThroughputTerms(msPerSample, 0, fixedMs, 0);
        int current = 16, moves = 0;
        for (int i = 0; i < 20; i++)
        {
            var decision = planner.Decide(current, terms, noiseScale);
            Assert.InRange(decision.Chosen, current / GoodputPlanner.MaxStep, current * GoodputPlanner.MaxStep);
            if (decision.Changed) moves++;
            current = decision.Chosen;
        }
        int brute = planner.Candidates.MaxBy(m => planner.Goodput(terms, m, noiseScale));
        Assert.True(planner.Goodput(terms, current, noiseScale) * (1 + GoodputPlanner.Hysteresis) >= planner.Goodput(terms, brute, noiseScale));
        double optimum = Math.Sqrt(noiseScale * fixedMs / msPerSample);
        Assert.InRange(current, optimum / 2, optimum * 2); // goodput is flat near M*: 5 % of it spans well over ×1.5
        Assert.InRange(moves, 1, 10);
    }

    /// <summary>
    /// --max-lr: a slow link (fixed cost 80 ms) and a large noise scale (φ 2,000) put the optimum near M* = √(φ f / b) = 4,000, so the
    /// planner climbs from M0 = 256 past 2,048. With the rate allowed to rise at most 4 × (a ceiling of 4 × --lr), E(M) is capped at
    /// 4 · M0 / M, which binds from M = 4 · M0 · φ / (φ − 3 · M0) ≈ 1,662 on: beyond it a larger batch gets no more progress per step
    /// and costs more per step, so goodput falls. The planner must settle at or below the first candidate past that point (1,722) and
    /// on the capped goodput's best within the hysteresis; below the cap E(M) is left alone.
    /// </summary>
    [Fact]
    public void A_rate_ceiling_stops_the_batch_where_the_rate_can_no_longer_follow()
    {
        var terms = new ThroughputTerms(0.01, 0, 80, 0);
        const double noise = 2000;
        int Settle(GoodputPlanner planner)
        {
            int current = 256;
            for (int i = 0; i < 12; i++) current = planner.Decide(current, terms, noise).Chosen;
            return current;
        }
        Assert.True(Settle(new GoodputPlanner(32, 8192, 256)) > 2048);
        var capped = new GoodputPlanner(32, 8192, 256, maxGain: 4);
        int settled = Settle(capped);
        Assert.InRange(settled, 1024, 1722);
        int brute = capped.Candidates.MaxBy(m => capped.Goodput(terms, m, noise));
        Assert.True(capped.Goodput(terms, settled, noise) * (1 + GoodputPlanner.Hysteresis) >= capped.Goodput(terms, brute, noise));
        Assert.Equal(Efficiency.Statistical(512, 256, noise), Efficiency.Statistical(512, 256, noise, maxGain: 4));
        Assert.Equal(4.0 * 256 / 2048, Efficiency.Statistical(2048, 256, double.PositiveInfinity, maxGain: 4), 12);
    }

    [Fact]
    public void A_gain_under_five_percent_keeps_the_batch()
    {
        var planner = new GoodputPlanner(16, 8192, 256);
        var terms = new ThroughputTerms(0.01, 0, 2.0, 0);
        const double noise = 100;
        int best = planner.Candidates.MaxBy(m => planner.Goodput(terms, m, noise));
        // A neighbour of the optimum predicts less than 5 % below it: staying there is kept.
        int neighbour = planner.Candidates[planner.Candidates.ToList().IndexOf(best) + 1];
        Assert.True(planner.Goodput(terms, best, noise) < 1.05 * planner.Goodput(terms, neighbour, noise));
        var decision = planner.Decide(neighbour, terms, noise);
        Assert.False(decision.Changed);
        Assert.Equal(neighbour, decision.Chosen);
    }

    /// <summary>No A → B → A within three decisions, even when the estimates swing back at once.</summary>
    [Fact]
    public void A_batch_just_left_is_not_chosen_again_within_three_decisions()
    {
        var planner = new GoodputPlanner(16, 8192, 256);
        var smallWins = new ThroughputTerms(0.01, 0, 0.5, 0); // M* ≈ 70
        var largeWins = new ThroughputTerms(0.01, 0, 50, 0);  // M* ≈ 700
        Assert.Equal(128, planner.Decide(256, smallWins, 100).Chosen); // decision 1: 256 left, one octave down
        // Decisions 2 to 4 would go back to 256 (the best within an octave of 128): it is barred, the next best is taken.
        for (int i = 0; i < GoodputPlanner.NoReturnWindows; i++)
        {
            int chosen = planner.Decide(128, largeWins, 100).Chosen;
            Assert.NotEqual(256, chosen);
            Assert.True(chosen > 128);
        }
        Assert.Equal(256, planner.Decide(128, largeWins, 100).Chosen); // decision 5: free again
    }

    [Fact]
    public void A_decision_moves_the_batch_by_at_most_one_octave()
    {
        var planner = new GoodputPlanner(16, 8192, 256);
        var decision = planner.Decide(4096, new ThroughputTerms(0.01, 0, 0.5, 0), 100); // M* ≈ 70, far below
        Assert.Equal(2048, decision.Chosen);
    }

    /// <summary>Under --bn-batch every candidate is whole ghost batches (docs/batch-norm.md), still spread geometrically over the range.</summary>
    [Fact]
    public void With_a_granule_every_candidate_is_a_multiple_of_it()
    {
        var planner = new GoodputPlanner(32, 4096, 256, granule: 32);
        Assert.All(planner.Candidates, c => Assert.Equal(0, c % 32));
        Assert.Equal(32, planner.Candidates[0]);
        Assert.Equal(4096, planner.Candidates[^1]);
        Assert.True(planner.Candidates.Count >= 20, $"{planner.Candidates.Count} candidates over 7 octaves");
        Assert.Throws<ArgumentOutOfRangeException>(() => new GoodputPlanner(48, 4096, 256, granule: 32));
    }
}
