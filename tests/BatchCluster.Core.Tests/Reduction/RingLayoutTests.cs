using BatchCluster.Core.Reduction;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace BatchCluster.Core.Tests.Reduction;

/// <summary>
/// The ring's schedule (docs/architecture.md, "The ring"): what every member sends is what its
/// neighbour expects, segments and chunks cut the model exactly, and a simulated ring that moves
/// chunks exactly as the layout says leaves each member with the whole sum of its shard
/// (added in ring order, the same bits every time) and, after the all-gather, every member with
/// every segment.
/// </summary>
public class RingLayoutTests
{
    private static RingLayout Layout(PositiveInt parameters, PositiveInt members, PositiveInt chunk)
    {
        int n = members.Get % 9 + 1;
        return new RingLayout(n + parameters.Get % 5000, n, chunk.Get % 700 + 1);
    }

    [Property(MaxTest = 200)]
    public Property Segments_and_chunks_cut_the_model_exactly_once(PositiveInt parameters, PositiveInt members, PositiveInt chunk)
    {
        var layout = Layout(parameters, members, chunk);
        var covered = Enumerable.Range(0, layout.Members).SelectMany(layout.Chunks).SelectMany(c => Enumerable.Range(c.Offset, c.Length)).ToArray();
        var lengths = Enumerable.Range(0, layout.Members).Select(j => layout.Segment(j).Length).ToArray();
        return (covered.SequenceEqual(Enumerable.Range(0, layout.ParameterCount))
                && lengths.Max() - lengths.Min() <= 1
                && Enumerable.Range(0, layout.Members).All(j => layout.Chunks(j).Count() == layout.ChunkCount(j))
                && Enumerable.Range(0, layout.Members).SelectMany(layout.Chunks).All(c => c.Length is > 0 && c.Length <= layout.ChunkValues))
            .Label($"P {layout.ParameterCount}, N {layout.Members}, chunk {layout.ChunkValues}");
    }

    [Property(MaxTest = 200)]
    public Property Every_member_sends_what_its_neighbour_expects_and_forwards_what_it_received(PositiveInt members)
    {
        var layout = new RingLayout(1000, members.Get % 12 + 1, 64);
        int n = layout.Members;
        bool ok = true;
        for (int k = 0; k < n; k++)
        {
            int next = layout.Downstream(k);
            ok &= layout.Upstream(next) == k;
            for (int t = 0; t < layout.Rounds; t++)
            {
                ok &= layout.ReduceSendSegment(k, t) == layout.ReduceReceiveSegment(next, t);
                ok &= layout.GatherSendSegment(k, t) == layout.GatherReceiveSegment(next, t);
                if (t > 0)
                {
                    ok &= layout.ReduceSendSegment(k, t) == layout.ReduceReceiveSegment(k, t - 1);
                    ok &= layout.GatherSendSegment(k, t) == layout.GatherReceiveSegment(k, t - 1);
                }
            }
            if (n > 1) ok &= layout.OwnedShard(k) == layout.ReduceReceiveSegment(k, layout.Rounds - 1);
            if (n > 1) ok &= layout.GatherSendSegment(k, 0) == layout.OwnedShard(k);
            ok &= layout.OwnerOf(layout.OwnedShard(k)) == k;
            // After the all-gather a member has received every segment but the one it owned.
            var received = Enumerable.Range(0, layout.Rounds).Select(t => layout.GatherReceiveSegment(k, t)).Append(layout.OwnedShard(k)).Order();
            ok &= received.SequenceEqual(Enumerable.Range(0, n));
        }
        var owned = Enumerable.Range(0, n).Select(layout.OwnedShard).Order();
        return (ok && owned.SequenceEqual(Enumerable.Range(0, n))).Label($"N {n}");
    }

    [Fact]
    public void Each_member_sends_about_two_models_less_one_shard_per_step()
    {
        var layout = new RingLayout(203_530, 4, 65_536);
        for (int k = 0; k < 4; k++)
        {
            long ring = layout.RingValuesSent(k);
            Assert.InRange(ring, 2 * 3 * (203_530 / 4), 2 * 3 * (203_530 / 4 + 1)); // (N−1)/N of the model each phase
        }
        Assert.Equal(0, new RingLayout(10, 1, 4).RingValuesSent(0)); // one member: nothing goes around
    }

    [Theory]
    [InlineData(1, 7)]
    [InlineData(2, 1024)]
    [InlineData(3, 5)]
    [InlineData(4, 13)]
    [InlineData(7, 100)]
    public void A_simulated_ring_leaves_every_member_with_the_sum_in_ring_order_and_every_segment(int members, int chunk)
    {
        const int parameters = 1001;
        var random = new Random(members);
        var own = Enumerable.Range(0, members).Select(_ => Enumerable.Range(0, parameters).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()).ToArray();
        var first = Simulate(new RingLayout(parameters, members, chunk), own);
        var again = Simulate(new RingLayout(parameters, members, chunk), own);
        Assert.Equal(first, again); // fixed order, fixed bits
        var layout = new RingLayout(parameters, members, chunk);
        for (int j = 0; j < members; j++)
        {
            var segment = layout.Segment(j);
            for (int i = segment.Offset; i < segment.End; i++)
            {
                // ((s_j + s_{j+1}) + s_{j+2}) + … in float, the order the ring adds in.
                float expected = own[j][i];
                for (int step = 1; step < members; step++) expected += own[(j + step) % members][i];
                Assert.Equal(expected, first[0][i]);
                for (int k = 1; k < members; k++) Assert.Equal(first[0][i], first[k][i]);
            }
        }
    }

    /// <summary>Moves chunks as the layout says: a member adds what it receives to its own sum and forwards it; owned shards stand in for the update; then the all-gather.</summary>
    private static float[][] Simulate(RingLayout layout, float[][] own)
    {
        int n = layout.Members;
        var sums = own.Select(o => (float[])o.Clone()).ToArray();
        for (int t = 0; t < layout.Rounds; t++)
        {
            // Every member sends at once in a round: take the frames first, then deliver them.
            var frames = Enumerable.Range(0, n).Select(k => layout.Chunks(layout.ReduceSendSegment(k, t))
                .Select(c => (Range: c, Values: sums[k].AsSpan(c.Offset, c.Length).ToArray())).ToList()).ToArray();
            for (int k = 0; k < n; k++)
                foreach (var (range, values) in frames[k])
                {
                    var target = sums[layout.Downstream(k)];
                    for (int i = 0; i < range.Length; i++) target[range.Offset + i] = values[i] + target[range.Offset + i];
                }
        }
        var result = Enumerable.Range(0, n).Select(_ => new float[layout.ParameterCount]).ToArray();
        for (int k = 0; k < n; k++)
        {
            var shard = layout.Segment(layout.OwnedShard(k));
            sums[k].AsSpan(shard.Offset, shard.Length).CopyTo(result[k].AsSpan(shard.Offset));
        }
        for (int t = 0; t < layout.Rounds; t++)
        {
            var frames = Enumerable.Range(0, n).Select(k => layout.Chunks(layout.GatherSendSegment(k, t))
                .Select(c => (Range: c, Values: result[k].AsSpan(c.Offset, c.Length).ToArray())).ToList()).ToArray();
            for (int k = 0; k < n; k++)
                foreach (var (range, values) in frames[k]) values.CopyTo(result[layout.Downstream(k)].AsSpan(range.Offset));
        }
        return result;
    }
}
