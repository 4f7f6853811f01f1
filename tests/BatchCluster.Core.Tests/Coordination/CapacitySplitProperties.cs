using BatchCluster.Core.Coordination;
using BatchCluster.Core.Training;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace BatchCluster.Core.Tests.Coordination;

/// <summary>
/// Capacity shares (<c>--split capacity</c>): a step's round, planned over a roster whose workers
/// report arbitrary speeds, still gives every id to exactly one share, and each worker's share is
/// its speed's part of the batch (within one sample, largest-remainder apportionment); with
/// declared shares the speeds are ignored.
/// </summary>
public class CapacitySplitProperties
{
    private static WorkerRoster<string> Roster(ShareSplit split, double[] speeds)
    {
        var roster = new WorkerRoster<string>(split);
        for (int i = 0; i < speeds.Length; i++)
        {
            var entry = roster.Add($"w{i}", new WorkerDescription($"w{i}", "a", "cpu", Threads: 1));
            entry.Ready = true;
            roster.Measured(entry, speeds[i]);
        }
        return roster;
    }

    private static Dictionary<int, int[]> Plan(WorkerRoster<string> roster, int[] ids) =>
        new WorkRound<int>(ids, roster, RoundPolicy.For(TimeSpan.FromSeconds(60), roster.ReadyCount)).Start(0)
            .OfType<SendWork>().ToDictionary(w => w.Worker, w => w.Ids);

    [Property(MaxTest = 300)]
    public Property Every_id_goes_to_exactly_one_share_and_shares_follow_measured_speed(PositiveInt batch, NormalFloat[] rawSpeeds)
    {
        // Speeds over nine decades, as a GPU node beside a throttled CPU node might report.
        var speeds = rawSpeeds.Take(12).Select(s => Math.Pow(10, Math.Abs(s.Get) % 9)).ToArray();
        if (speeds.Length == 0) speeds = [1.0];
        var ids = Enumerable.Range(0, batch.Get % 4096 + 1).Select(i => 7 * i + 3).ToArray();
        var plan = Plan(Roster(ShareSplit.Capacity, speeds), ids);

        var assigned = plan.Values.SelectMany(x => x).Order().ToArray();
        bool exactlyOnce = assigned.SequenceEqual(ids.Order());
        double total = speeds.Sum();
        bool proportional = Enumerable.Range(0, speeds.Length).All(w =>
            Math.Abs(plan.GetValueOrDefault(w, []).Length - ids.Length * speeds[w] / total) < 1.0 + 1e-9);
        return exactlyOnce.Label("every id exactly once").And(proportional.Label("share = speed's part within one sample"));
    }

    [Fact]
    public void A_worker_at_half_speed_gets_a_third_of_the_batch()
    {
        var plan = Plan(Roster(ShareSplit.Capacity, [2000, 1000]), Enumerable.Range(0, 1200).ToArray());
        Assert.Equal(800, plan[0].Length);
        Assert.Equal(400, plan[1].Length);
    }

    [Fact]
    public void Declared_shares_ignore_measured_speeds()
    {
        var plan = Plan(Roster(ShareSplit.Declared, [2000, 1000]), Enumerable.Range(0, 1200).ToArray());
        Assert.Equal(600, plan[0].Length);
        Assert.Equal(600, plan[1].Length);
    }

    [Fact]
    public void The_measured_speed_is_a_moving_average_that_follows_a_change()
    {
        var roster = Roster(ShareSplit.Capacity, [1000]);
        var entry = roster.All[0];
        roster.MeasuredSpeed(entry.Key, samples: 500, computeMilliseconds: 1000); // 500 samples/s
        Assert.Equal(1000 + WorkerRoster<string>.SpeedSmoothing * (500 - 1000), entry.MeasuredSamplesPerSecond!.Value, 9);
        for (int i = 0; i < 40; i++) roster.MeasuredSpeed(entry.Key, 500, 1000);
        Assert.Equal(500, entry.MeasuredSamplesPerSecond!.Value, 3);
        // Nonsense reports (no time, no samples, NaN) leave it alone.
        roster.MeasuredSpeed(entry.Key, 500, 0);
        roster.MeasuredSpeed(entry.Key, 0, 10);
        roster.MeasuredSpeed(entry.Key, 500, double.NaN);
        Assert.Equal(500, entry.MeasuredSamplesPerSecond!.Value, 3);
    }
}
