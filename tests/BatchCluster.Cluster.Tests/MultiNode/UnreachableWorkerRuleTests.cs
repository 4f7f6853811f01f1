using BatchCluster.Cluster.Nodes;

namespace BatchCluster.Cluster.Tests.MultiNode;

/// <summary>When the coordinator's node downs an unreachable worker itself (docs/robustness.md, "Broken links").</summary>
public sealed class UnreachableWorkerRuleTests
{
    private static readonly TimeSpan After = TimeSpan.FromSeconds(4);
    private static TimeSpan At(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void A_worker_unreachable_for_the_whole_time_is_due_once()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("w1", At(10));
        Assert.Empty(rule.Due(At(13.9), reachableOthers: 1));
        Assert.Equal(["w1"], rule.Due(At(14), reachableOthers: 1));
        Assert.Empty(rule.Due(At(20), reachableOthers: 1)); // returned once
    }

    [Fact]
    public void A_worker_reachable_again_in_time_is_never_due_and_its_clock_starts_afresh()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("thawed", At(10));
        rule.Forget("thawed"); // a frozen worker thawed within the 4 s
        Assert.Empty(rule.Due(At(30), reachableOthers: 1));
        rule.Unreachable("thawed", At(31));
        Assert.Empty(rule.Due(At(34), reachableOthers: 1));
        Assert.Equal(["thawed"], rule.Due(At(35), reachableOthers: 1));
    }

    [Fact]
    public void A_repeated_unreachable_report_keeps_the_first_time()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("w1", At(10));
        rule.Unreachable("w1", At(13)); // another observer's report of the same worker
        Assert.Equal(["w1"], rule.Due(At(14), reachableOthers: 1));
    }

    [Fact]
    public void A_node_that_reaches_no_other_member_downs_nobody()
    {
        // Every other member unreachable: this node is the one cut off, and the resolver's down-if-alone decides.
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("w1", At(0));
        rule.Unreachable("w2", At(0));
        Assert.Empty(rule.Due(At(60), reachableOthers: 0));
        Assert.Equal(["w1", "w2"], rule.Due(At(61), reachableOthers: 1).Order());
    }

    [Fact]
    public void Only_the_workers_whose_time_is_up_are_due()
    {
        var rule = new UnreachableWorkerRule<string>(After);
        rule.Unreachable("early", At(0));
        rule.Unreachable("late", At(3));
        Assert.Equal(["early"], rule.Due(At(5), reachableOthers: 1));
        Assert.Equal(["late"], rule.Watched);
        Assert.Equal(["late"], rule.Due(At(7), reachableOthers: 1));
    }
}
