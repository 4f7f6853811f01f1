using BatchCluster.Cluster.Nodes;

namespace BatchCluster.Cluster.Tests.MultiNode;

/// <summary>When the coordinator's node downs an unreachable worker itself (docs/robustness.md, "Broken links").</summary>
public sealed class UnreachableWorkerRuleTests
{
    private static readonly TimeSpan After = TimeSpan.FromSeconds(4);
    private static TimeSpan At(double seconds) => TimeSpan.FromSeconds(seconds);
    private static IEnumerable<string> Due(UnreachableWorkerRule<string> rule, TimeSpan now, int reachableOthers) =>
        rule.Due(now, reachableOthers).Select(d => d.Worker);

    [Fact]
    public void A_worker_unreachable_for_the_whole_time_is_due_once()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("w1", At(10));
        Assert.Empty(Due(rule, At(13.9), reachableOthers: 1));
        Assert.Equal(["w1"], Due(rule, At(14), reachableOthers: 1));
        Assert.Empty(Due(rule, At(20), reachableOthers: 1)); // returned once
    }

    [Fact]
    public void A_worker_reachable_again_in_time_is_never_due_and_its_clock_starts_afresh()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("thawed", At(10));
        rule.Reachable("thawed"); // a frozen worker thawed within the 4 s
        Assert.Empty(Due(rule, At(30), reachableOthers: 1));
        rule.Unreachable("thawed", At(31));
        Assert.Empty(Due(rule, At(34), reachableOthers: 1));
        Assert.Equal(["thawed"], Due(rule, At(35), reachableOthers: 1));
    }

    [Fact]
    public void A_repeated_unreachable_report_keeps_the_first_time()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("w1", At(10));
        rule.Unreachable("w1", At(13)); // another observer's report of the same worker
        Assert.Equal(["w1"], Due(rule, At(14), reachableOthers: 1));
    }

    [Fact]
    public void A_node_that_reaches_no_other_member_downs_nobody()
    {
        // Every other member unreachable: this node is the one cut off, and the resolver's down-if-alone decides.
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("w1", At(0));
        rule.Unreachable("w2", At(0));
        Assert.Empty(Due(rule, At(60), reachableOthers: 0));
        Assert.Equal(["w1", "w2"], Due(rule, At(61), reachableOthers: 1).Order());
    }

    [Fact]
    public void Only_the_workers_whose_time_is_up_are_due()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("early", At(0));
        rule.Unreachable("late", At(3));
        Assert.Equal(["early"], Due(rule, At(5), reachableOthers: 1));
        Assert.Equal(["late"], rule.Watched);
        Assert.Equal(["late"], Due(rule, At(7), reachableOthers: 1));
    }

    [Fact]
    public void A_worker_whose_connection_drops_three_times_within_ten_seconds_is_due_at_once()
    {
        // The link breaker reconnects every second and is dropped again; the node may never have marked it unreachable.
        var rule = new UnreachableWorkerRule<string>(After);
        Assert.Equal(1, rule.Dropped("bad", At(0)));
        Assert.Equal(2, rule.Dropped("bad", At(1)));
        Assert.Empty(Due(rule, At(1.5), reachableOthers: 1));
        Assert.Equal(3, rule.Dropped("bad", At(2)));
        var decision = Assert.Single(rule.Due(At(2), reachableOthers: 1));
        Assert.Equal(("bad", "its connection dropped 3 times within 10 s"), (decision.Worker, decision.Reason));
        Assert.Empty(rule.Watched); // forgotten once returned
    }

    [Fact]
    public void Drops_far_apart_or_on_a_node_that_reaches_nobody_down_nobody()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Dropped("restarted", At(0));
        rule.Dropped("restarted", At(6));
        Assert.Equal(2, rule.Dropped("restarted", At(12))); // the first is out of the 10 s window
        Assert.Empty(Due(rule, At(12), reachableOthers: 1));
        rule.Dropped("restarted", At(13));
        Assert.Empty(Due(rule, At(13), reachableOthers: 0)); // cut off itself: the resolver's down-if-alone decides
        rule.Reachable("restarted"); // reachable again: the drops still count
        Assert.Equal(["restarted"], Due(rule, At(13), reachableOthers: 1));
    }
}
