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
    public Property Every_id_goes_to_exactly_one_share_and_shares_follow_measured_speed_floored(PositiveInt batch, NormalFloat[] rawSpeeds)
    {
        // Speeds over nine decades, as a GPU node beside a throttled CPU node might report.
        var speeds = rawSpeeds.Take(12).Select(s => Math.Pow(10, Math.Abs(s.Get) % 9)).ToArray();
        if (speeds.Length == 0) speeds = [1.0];
        var ids = Enumerable.Range(0, batch.Get % 4096 + 1).Select(i => 7 * i + 3).ToArray();
        var plan = Plan(Roster(ShareSplit.Capacity, speeds), ids);

        var assigned = plan.Values.SelectMany(x => x).Order().ToArray();
        bool exactlyOnce = assigned.SequenceEqual(ids.Order());
        // Each weight is the speed, but at least the fastest's / 16 (nobody starves: WorkerRoster.SlowestWeightOfFastest).
        var weights = speeds.Select(v => Math.Max(v, speeds.Max() / WorkerRoster<string>.SlowestWeightOfFastest)).ToArray();
        double total = weights.Sum();
        bool proportional = Enumerable.Range(0, speeds.Length).All(w =>
            Math.Abs(plan.GetValueOrDefault(w, []).Length - ids.Length * weights[w] / total) < 1.0 + 1e-9);
        return exactlyOnce.Label("every id exactly once").And(proportional.Label("share = weight's part within one sample"));
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
        roster.MeasuredShare(entry.Key, samples: 500, computeMilliseconds: 1, roundTripMilliseconds: 5); // the first share: a warm-up, not timed
        Assert.Equal(1000, entry.MeasuredSamplesPerSecond!.Value, 9);
        Assert.False(roster.MeasuredShare(entry.Key, samples: 500, computeMilliseconds: 1000, roundTripMilliseconds: 1200)); // computes 500 samples/s
        Assert.Equal(1000 + WorkerRoster<string>.SpeedSmoothing * (500 - 1000), entry.MeasuredSamplesPerSecond!.Value, 9);
        for (int i = 0; i < 40; i++) roster.MeasuredShare(entry.Key, 500, 1000, 1200);
        Assert.Equal(500, entry.MeasuredSamplesPerSecond!.Value, 3);
        // Nonsense round trips (no time, no samples, NaN) leave it alone.
        roster.MeasuredShare(entry.Key, 500, 1000, 0);
        roster.MeasuredShare(entry.Key, 0, 10, 10);
        roster.MeasuredShare(entry.Key, 500, 1000, double.NaN);
        Assert.Equal(500, entry.MeasuredSamplesPerSecond!.Value, 3);
    }

    /// <summary>
    /// A worker that reports 10⁹ samples/s (or no compute time at all) while its round trips deliver what the others'
    /// do is believed no further than those round trips: it gets a share by what it delivers, not the whole batch, and
    /// the claims are reported (after three in a row: one round trip held up by a pause is not a lie). Honest claims, whose compute fits in their round trip within the factor, size shares as
    /// they are: they balance compute exactly, whatever the transfer (here 5 × and 50 × the compute).
    /// </summary>
    [Fact]
    public void A_speed_claim_the_round_trip_cannot_contain_counts_as_what_it_delivered()
    {
        var roster = new WorkerRoster<string>(ShareSplit.Capacity);
        var workers = new[] { "liar", "honest-1", "honest-2" }.Select(n => roster.Add(n, new WorkerDescription(n, "a", "cpu", 1))).ToArray();
        foreach (var w in workers) w.Ready = true;
        for (int i = 0; i < 40; i++)
        {
            bool reported = roster.MeasuredShare(workers[0].Key, 100, computeMilliseconds: i % 2 == 0 ? 1e-4 : 0, roundTripMilliseconds: 10);
            Assert.Equal(i == 3, reported); // the first share is not timed; the third false claim in a row is reported, once
            Assert.False(roster.MeasuredShare(workers[1].Key, 100, computeMilliseconds: 2, roundTripMilliseconds: 10));
            Assert.False(roster.MeasuredShare(workers[2].Key, 100, computeMilliseconds: 0.2, roundTripMilliseconds: 10));
        }
        Assert.Equal(10_000, workers[0].MeasuredSamplesPerSecond!.Value, 3);  // delivered
        Assert.Equal(50_000, workers[1].MeasuredSamplesPerSecond!.Value, 3);  // claimed, believable
        Assert.Equal(500_000, workers[2].MeasuredSamplesPerSecond!.Value, 3); // claimed, believable
        var plan = Plan(roster, Enumerable.Range(0, 1120).ToArray());
        Assert.Equal(1120 * (500_000 / 16.0) / (500_000 / 16.0 + 50_000 + 500_000), plan[workers[0].Key].Length, 0); // the floor, not the batch
    }

    /// <summary>
    /// A worker measured very slow once (a pause) still gets samples, so it is measured again and recovers; a worker
    /// not timed yet (just joined, or back from quarantine) gets the average weight, so it is timed at all.
    /// </summary>
    [Fact]
    public void Neither_a_slow_measurement_nor_none_starves_a_worker()
    {
        var roster = Roster(ShareSplit.Capacity, [100_000, 10]);
        var plan = Plan(roster, Enumerable.Range(0, 170).ToArray());
        Assert.Equal(10, plan[roster.All[1].Key].Length); // weight 100,000/16 against 100,000: 10 of 170

        var fresh = roster.Add("fresh", new WorkerDescription("fresh", "c", "cpu", Threads: 1));
        fresh.Ready = true;
        Assert.Equal((100_000 + 10) / 2.0, roster.CapacityOf(fresh), 9); // the measured ones' average, not its one thread
    }
}
