using BatchCluster.Core.Reduction;

namespace BatchCluster.Core.Tests.Reduction;

/// <summary>
/// The coordinator's view of one ring reduction, without actors or sockets: the step is decided
/// once every member's shard norm is in (their sum is the batch's), each member must send its
/// norm first and then exactly the chunks of its own shard in order, and a member whose values do
/// not match the norm it announced is named before anything commits.
/// </summary>
public class RingReductionTests
{
    // 3 members with keys 10, 11, 12; 10 parameters in segments of 4, 3, 3; chunks of 2 values.
    private static readonly RingLayout Layout = new(10, 3, 2);
    private static RingReduction NewReduction() => new(step: 5, version: 4, generation: 0, epoch: 1, [10, 11, 12], Layout);

    /// <summary>Sends member k's whole shard in its chunks, each with the given share of the squared norm.</summary>
    private static string? SendShard(RingReduction ring, int worker, double squaredNormPerValue = 1)
    {
        string? refused = null;
        while (refused is null && ring.ExpectedChunk(worker) is { } due)
            refused = ring.OnChunk(worker, due.Offset, due.Length, squaredNormPerValue * due.Length);
        return refused;
    }

    [Fact]
    public void The_step_is_decided_when_every_norm_is_in_and_complete_when_every_shard_is()
    {
        var ring = NewReduction();
        int[] members = [10, 11, 12];
        foreach (int worker in members)
        {
            Assert.False(ring.NormsComplete);
            int k = ring.IndexOf(worker);
            Assert.Null(ring.OnNorm(worker, Layout.Segment(Layout.OwnedShard(k)).Length));
        }
        Assert.True(ring.NormsComplete);
        Assert.Equal(10, ring.SquaredNormSum); // one per value: the shards cover the model once
        foreach (int worker in members)
        {
            Assert.False(ring.ShardsComplete);
            Assert.Null(SendShard(ring, worker));
            Assert.Null(ring.ExpectedChunk(worker));
        }
        Assert.True(ring.ShardsComplete);
    }

    [Fact]
    public void Each_member_is_due_exactly_the_chunks_of_its_own_shard_in_order()
    {
        var ring = NewReduction();
        for (int k = 0; k < 3; k++)
        {
            int worker = 10 + k;
            ring.OnNorm(worker, 1);
            var expected = Layout.Chunks(Layout.OwnedShard(k)).ToList();
            var due = new List<ModelRange>();
            while (ring.ExpectedChunk(worker) is { } next)
            {
                due.Add(next);
                Assert.Null(ring.OnChunk(worker, next.Offset, next.Length, 1.0 / expected.Count));
            }
            Assert.Equal(expected, due);
        }
    }

    [Fact]
    public void Protocol_breaches_are_refused_with_the_reason()
    {
        var ring = NewReduction();
        Assert.Contains("outside the ring", ring.OnNorm(99, 1));
        var first = ring.ExpectedChunk(11)!.Value;
        Assert.Contains("before the member's norm", ring.OnChunk(11, first.Offset, first.Length, 1));
        Assert.Null(ring.OnNorm(11, 3));
        Assert.Contains("second shard norm", ring.OnNorm(11, 3));
        Assert.Contains("were due", ring.OnChunk(11, first.Offset + 1, first.Length, 1));
        Assert.Contains("outside the ring", ring.OnChunk(99, first.Offset, first.Length, 1));
        Assert.Null(SendShard(ring, 11, 1));
        Assert.Contains("after the member's whole shard", ring.OnChunk(11, first.Offset, first.Length, 1));
    }

    [Fact]
    public void A_shard_that_does_not_match_its_announced_norm_is_caught_on_its_last_chunk()
    {
        var ring = NewReduction();
        int k = ring.IndexOf(12);
        int length = Layout.Segment(Layout.OwnedShard(k)).Length;
        Assert.Null(ring.OnNorm(12, length)); // announces 1 per value
        string? refused = SendShard(ring, 12, squaredNormPerValue: 1.001); // sends 0.1 % more
        Assert.NotNull(refused);
        Assert.Contains("not the", refused);
    }

    [Fact]
    public void A_norm_announced_finite_with_non_finite_values_is_caught_and_a_non_finite_norm_counts_as_infinite()
    {
        var ring = NewReduction();
        Assert.Null(ring.OnNorm(10, 4));
        var due = ring.ExpectedChunk(10)!.Value;
        string? refused = null;
        while (refused is null && ring.ExpectedChunk(10) is { } next)
            refused = ring.OnChunk(10, next.Offset, next.Length, next == due ? double.PositiveInfinity : 1);
        Assert.NotNull(refused);

        var other = NewReduction();
        Assert.Null(other.OnNorm(11, double.NaN));
        Assert.Equal(double.PositiveInfinity, other.AnnouncedNorm(11));
        Assert.Null(SendShard(other, 11, double.PositiveInfinity)); // non-finite as announced: the step will be skipped, not the member lost
    }
}
