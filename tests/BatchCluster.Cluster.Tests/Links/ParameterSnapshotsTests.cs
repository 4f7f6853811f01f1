using System.Runtime.InteropServices;
using BatchCluster.Cluster.Links;

namespace BatchCluster.Cluster.Tests.Links;

/// <summary>A snapshot's array is written again only when no worker can still read it (the ownership rule).</summary>
public class ParameterSnapshotsTests
{
    private static float[] ArrayOf(ReadOnlyMemory<float> values) =>
        MemoryMarshal.TryGetArray(values, out var segment) ? segment.Array! : throw new InvalidOperationException("not an array");

    [Fact]
    public void One_snapshot_per_version_and_a_copy_of_the_parameters()
    {
        var snapshots = new ParameterSnapshots();
        float[] live = [1, 2, 3];
        var first = snapshots.At(0, live);
        Assert.Same(first, snapshots.At(0, live));
        live[0] = 99; // the coordinator updates its live parameters: the snapshot does not change
        Assert.Equal([1f, 2f, 3f], first.Values.ToArray());
    }

    [Fact]
    public void An_array_is_reused_only_after_every_request_that_carried_it_was_answered()
    {
        var snapshots = new ParameterSnapshots();
        var v0 = snapshots.At(0, [1, 2, 3]);
        snapshots.Lent(worker: 0);
        snapshots.Lent(worker: 1);
        snapshots.Lent(worker: 1); // a second share for the same worker in the same step (a re-plan)
        snapshots.Answered(0, 0);
        snapshots.Answered(1, 0);
        var v1 = snapshots.At(1, [4, 5, 6]);
        Assert.NotSame(ArrayOf(v0.Values), ArrayOf(v1.Values)); // worker 1 still has one request at version 0
        Assert.Equal([1f, 2f, 3f], v0.Values.ToArray());

        snapshots.Answered(1, 0);
        var v2 = snapshots.At(2, [7, 8, 9]);
        Assert.Same(ArrayOf(v0.Values), ArrayOf(v2.Values)); // now free: recycled
        Assert.Equal(2, snapshots.Allocated);
    }

    [Fact]
    public void An_answer_at_a_later_version_frees_the_earlier_snapshots_and_a_gone_worker_frees_all()
    {
        var snapshots = new ParameterSnapshots();
        var v0 = snapshots.At(0, [1]);
        snapshots.Lent(0);
        snapshots.Lent(1);
        var v1 = snapshots.At(1, [2]);
        snapshots.Lent(0);
        snapshots.Answered(0, 1); // worker 0 answers in order: version 0 was read before
        snapshots.Gone(1);        // worker 1 stopped
        var v2 = snapshots.At(2, [3]);
        var v3 = snapshots.At(3, [4]);
        Assert.Same(ArrayOf(v0.Values), ArrayOf(v2.Values));
        Assert.Same(ArrayOf(v1.Values), ArrayOf(v3.Values));
        Assert.Equal(2, snapshots.Allocated);
    }

    [Fact]
    public void A_reader_that_never_answers_keeps_its_array_for_good()
    {
        var snapshots = new ParameterSnapshots();
        var stalled = snapshots.At(0, [42]);
        snapshots.Lent(worker: 7);
        for (int v = 1; v <= 20; v++)
        {
            var snapshot = snapshots.At(v, [v]);
            Assert.NotSame(ArrayOf(stalled.Values), ArrayOf(snapshot.Values));
            snapshots.Lent(0);
            snapshots.Answered(0, v);
        }
        Assert.Equal([42f], stalled.Values.ToArray());
    }
}
