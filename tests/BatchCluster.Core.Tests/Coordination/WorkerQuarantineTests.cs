using BatchCluster.Core.Coordination;

namespace BatchCluster.Core.Tests.Coordination;

/// <summary>The quarantine's decisions, as plain code with the time passed in.</summary>
public class WorkerQuarantineTests
{
    [Fact]
    public void Each_quarantine_lasts_twice_as_long_and_the_offence_after_the_limit_expels()
    {
        var quarantine = new WorkerQuarantine(new QuarantinePolicy(MissedDeadlines: 1, BackoffMs: 100, Limit: 3));
        double now = 0;
        var lengths = new List<double>();
        for (int i = 1; i <= 3; i++)
        {
            var decision = quarantine.Quarantine(7, now);
            Assert.False(decision.Expel);
            Assert.Equal(i, decision.Nth);
            Assert.True(quarantine.IsQuarantined(7));
            lengths.Add(decision.UntilMs - now);
            Assert.Empty(quarantine.Release(decision.UntilMs - 1)); // not a moment early
            Assert.Equal([7], quarantine.Release(decision.UntilMs));
            Assert.False(quarantine.IsQuarantined(7));
            now = decision.UntilMs + 5;
        }
        Assert.Equal([100, 200, 400], lengths);
        var fourth = quarantine.Quarantine(7, now);
        Assert.True(fourth.Expel);
        Assert.Equal(4, fourth.Nth);
        Assert.True(quarantine.IsQuarantined(7)); // held out for good, until the host forgets it
        Assert.Null(quarantine.NextReleaseMs);    // never released
        Assert.Empty(quarantine.Release(double.MaxValue));
        Assert.False(quarantine.Pardon(7));
        quarantine.Forget(7);
        Assert.False(quarantine.IsQuarantined(7));
    }

    [Fact]
    public void Missed_deadlines_count_only_in_a_row()
    {
        var quarantine = new WorkerQuarantine(new QuarantinePolicy(MissedDeadlines: 3));
        Assert.False(quarantine.MissedDeadline(1));
        Assert.False(quarantine.MissedDeadline(1));
        quarantine.Answered(1); // in time once: the count starts again
        Assert.False(quarantine.MissedDeadline(1));
        Assert.False(quarantine.MissedDeadline(1));
        Assert.True(quarantine.MissedDeadline(1));
        Assert.False(quarantine.MissedDeadline(2)); // per worker
    }

    [Fact]
    public void Releases_come_in_time_order_across_workers_and_a_pardon_does_not_count()
    {
        var quarantine = new WorkerQuarantine(new QuarantinePolicy(BackoffMs: 1000, Limit: 1));
        quarantine.Quarantine(3, 0);
        quarantine.Quarantine(1, 500);
        Assert.Equal(1000, quarantine.NextReleaseMs);
        Assert.Equal([3], quarantine.Release(1200));
        Assert.Equal(1500, quarantine.NextReleaseMs);
        Assert.True(quarantine.Pardon(1));
        Assert.False(quarantine.Pardon(1)); // not quarantined any more
        Assert.Null(quarantine.NextReleaseMs);
        Assert.False(quarantine.Quarantine(1, 2000).Expel); // the pardoned one was not counted: this is its first
        Assert.True(quarantine.Quarantine(3, 2000).Expel);  // worker 3 served its one
    }

    [Fact]
    public void A_policy_that_cannot_work_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new QuarantinePolicy(MissedDeadlines: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new QuarantinePolicy(BackoffMs: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new QuarantinePolicy(Limit: -1));
    }
}
