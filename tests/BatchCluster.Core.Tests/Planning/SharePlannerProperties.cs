using BatchCluster.Core.Planning;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace BatchCluster.Core.Tests.Planning;

public class SharePlannerProperties
{
    private static int[] Ids(int count, int offset) => Enumerable.Range(offset, count).ToArray();

    [Property(MaxTest = 300)]
    public Property Every_sample_id_is_assigned_exactly_once(PositiveInt batch, PositiveInt[] capacities, NonNegativeInt offset)
    {
        var caps = capacities.Select(c => (double)(c.Get % 1000 + 1)).Take(64).ToArray();
        if (caps.Length == 0) caps = [1.0];
        var ids = Ids(batch.Get % 5000 + 1, offset.Get);
        var plan = SharePlanner.Plan(ids, caps);
        var assigned = plan.SelectMany(s => s.SampleIds).ToArray();
        return (assigned.SequenceEqual(ids)
                && plan.All(s => s.Size > 0)
                && plan.Select(s => s.WorkerIndex).Distinct().Count() == plan.Count
                && plan.All(s => s.WorkerIndex < caps.Length)).ToProperty();
    }

    [Property(MaxTest = 300)]
    public Property Shares_follow_capacity_within_one_sample(PositiveInt batch, PositiveInt[] capacities)
    {
        var caps = capacities.Select(c => (double)(c.Get % 100 + 1)).Take(16).ToArray();
        if (caps.Length == 0) caps = [1.0];
        int n = batch.Get % 4096 + 1;
        var plan = SharePlanner.Plan(Ids(n, 0), caps);
        double total = caps.Sum();
        var sizes = new int[caps.Length];
        foreach (var s in plan) sizes[s.WorkerIndex] = s.Size;
        return sizes.Select((size, i) => Math.Abs(size - n * caps[i] / total) < 1.0 + 1e-9).All(ok => ok).ToProperty();
    }

    [Property(MaxTest = 300)]
    public Property Micro_batches_cover_a_share_in_order(NonNegativeInt share, PositiveInt micro)
    {
        int size = share.Get % 3000;
        int m = micro.Get % 300 + 1;
        var ranges = MicroBatches.Of(size, m).ToList();
        var covered = ranges.SelectMany(r => Enumerable.Range(r.Start.Value, r.End.Value - r.Start.Value)).ToArray();
        return (covered.SequenceEqual(Enumerable.Range(0, size))
                && ranges.All(r => r.End.Value - r.Start.Value is > 0 and var len && len <= m)).ToProperty();
    }

    [Fact]
    public void Even_plans_differ_by_at_most_one_sample()
    {
        var plan = SharePlanner.PlanEven(Ids(10, 0), 4);
        Assert.Equal(new[] { 3, 3, 2, 2 }, plan.Select(s => s.Size));
    }

    [Fact]
    public void Workers_beyond_the_batch_get_no_share()
    {
        var plan = SharePlanner.PlanEven(Ids(3, 0), 5);
        Assert.Equal(3, plan.Count);
        Assert.All(plan, s => Assert.Equal(1, s.Size));
    }

    [Fact]
    public void Bad_capacities_are_refused()
    {
        Assert.Throws<ArgumentException>(() => SharePlanner.Plan(Ids(4, 0), [1.0, 0.0]));
        Assert.Throws<ArgumentException>(() => SharePlanner.Plan(Ids(4, 0), []));
    }
}
