using BatchCluster.Core.Coordination;

namespace BatchCluster.Core.Tests.Coordination;

public sealed class EvaluationAuditTests
{
    [Theory]
    [InlineData(10_000, 4, 50)]   // 2 % of the set over four workers
    [InlineData(10_000, 1, 200)]
    [InlineData(5_000, 8, 32)]    // never fewer than 32
    [InlineData(20, 3, 20)]       // a small set: all of it
    public void Audit_rows_are_about_two_percent_of_the_set_over_all_workers_distinct_and_sorted(int count, int workers, int expected)
    {
        var rows = EvaluationAudit.ChooseRows(count, workers, new Random(1));
        Assert.Equal(expected, rows.Length);
        Assert.Equal(rows.Distinct().Order(), rows);
        Assert.All(rows, r => Assert.InRange(r, 0, count - 1));
    }

    private static EvaluationAudit Audit(int rows, params int[] workers) => new(Enumerable.Range(0, rows).ToArray(), workers);

    [Fact]
    public void Honest_answers_that_differ_by_a_tie_agree()
    {
        var audit = Audit(50, 1, 2, 3);
        audit.Record(1, 42, 20.0);
        audit.Record(2, 43, 20.0 * (1 + 1e-6));
        Assert.False(audit.Complete);
        audit.Record(3, 42, 20.0);
        Assert.True(audit.Complete);
        var verdict = audit.Decide();
        Assert.Empty(verdict.Dissenters);
        Assert.False(verdict.Disputed);
    }

    [Fact]
    public void A_worker_that_says_all_correct_is_the_dissenter_of_three()
    {
        var audit = Audit(50, 1, 2, 3);
        audit.Record(1, 42, 20.0);
        audit.Record(2, 50, 20.0); // "all correct"
        audit.Record(3, 42, 20.0);
        Assert.Equal([2], audit.Decide().Dissenters);
    }

    [Fact]
    public void A_wrong_loss_is_dissent_too_and_two_that_disagree_are_disputed()
    {
        var three = Audit(50, 1, 2, 3);
        three.Record(1, 42, 20.0);
        three.Record(2, 42, 2.0);
        three.Record(3, 42, 20.0);
        Assert.Equal([2], three.Decide().Dissenters);

        var two = Audit(50, 1, 2);
        two.Record(1, 42, 20.0);
        two.Record(2, 50, 20.0);
        var verdict = two.Decide();
        Assert.Empty(verdict.Dissenters);
        Assert.True(verdict.Disputed);
    }

    [Fact]
    public void Strangers_second_answers_and_dropped_auditors_do_not_count()
    {
        var audit = Audit(50, 1, 2, 3);
        Assert.False(audit.Record(9, 50, 1.0));
        Assert.True(audit.Record(1, 42, 20.0));
        Assert.False(audit.Record(1, 50, 20.0));
        audit.Record(2, 42, 20.0);
        audit.Drop(3);
        Assert.True(audit.Complete);
        Assert.Empty(audit.Decide().Dissenters);
        var alone = Audit(50, 1, 2);
        alone.Record(1, 50, 1.0);
        alone.Drop(2);
        Assert.False(alone.Decide().Disputed); // nobody to compare with
    }
}
