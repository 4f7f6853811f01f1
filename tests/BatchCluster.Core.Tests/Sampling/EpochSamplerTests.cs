using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Tests.Sampling;

public class EpochSamplerTests
{
    [Fact]
    public void An_epoch_visits_distinct_ids_and_drops_only_the_last_partial_batch()
    {
        var sampler = new EpochSampler(datasetSize: 103, globalBatch: 10, seed: 5, shuffle: true);
        Assert.Equal(10, sampler.StepsPerEpoch);
        var ids = Enumerable.Range(0, 10).SelectMany(s => sampler.Take(s).SampleIds).ToArray();
        Assert.Equal(100, ids.Length);
        Assert.Equal(100, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 0, 102));
        Assert.Equal(sampler.OrderOf(0).Take(100), ids);
    }

    [Fact]
    public void Batches_depend_only_on_seed_and_epoch()
    {
        var a = new EpochSampler(1000, 32, seed: 9, shuffle: true);
        var b = new EpochSampler(1000, 32, seed: 9, shuffle: true);
        // Visit b out of order: the batch of a step must not depend on what was taken before.
        var late = b.Take(100);
        Assert.Equal(a.Take(100).SampleIds, late.SampleIds);
        Assert.Equal(a.Take(3).SampleIds, b.Take(3).SampleIds);
        Assert.Equal(100 / 31, late.Epoch);
        Assert.Equal(100 % 31 * 32, late.Offset);
    }

    [Fact]
    public void Epochs_and_seeds_give_different_permutations()
    {
        var a = new EpochSampler(1000, 100, seed: 1, shuffle: true);
        var b = new EpochSampler(1000, 100, seed: 2, shuffle: true);
        Assert.NotEqual(a.OrderOf(0), a.OrderOf(1));
        Assert.NotEqual(a.OrderOf(0), b.OrderOf(0));
        Assert.Equal(Enumerable.Range(0, 1000), a.OrderOf(1).Order());
    }

    [Fact]
    public void The_permutation_is_pinned()
    {
        // Guards the promise that a seed means the same batches forever (any .NET version, any machine).
        var sampler = new EpochSampler(10, 5, seed: 42, shuffle: true);
        Assert.Equal(Expected42, sampler.OrderOf(0));
    }

    // Computed once by an independent (Python) implementation of SplitMix64.For + Fisher–Yates.
    private static readonly int[] Expected42 = [5, 1, 9, 6, 7, 2, 4, 0, 8, 3];

    [Fact]
    public void SplitMix64_matches_its_reference_output()
    {
        // First outputs of SplitMix64 seeded with 0 (published reference values of the algorithm).
        var rng = new SplitMix64(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, rng.NextUInt64());
        Assert.Equal(0x6E789E6AA1B965F4UL, rng.NextUInt64());
    }

    [Fact]
    public void Without_shuffle_the_training_set_is_taken_in_order()
    {
        var sampler = new EpochSampler(10, 4, seed: 3, shuffle: false);
        Assert.Equal(new[] { 4, 5, 6, 7 }, sampler.Take(1).SampleIds);
        Assert.Equal(new[] { 0, 1, 2, 3 }, sampler.Take(2).SampleIds); // epoch 1 starts again
    }

    [Fact]
    public void A_global_batch_larger_than_the_data_set_is_refused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new EpochSampler(10, 11, 1, true));
        Assert.Contains("global batch 11 is larger than the 10 training samples", e.Message);
    }

    /// <summary>A batch that changes between steps takes the next positions of the same order; one that does not fit in the
    /// epoch's rest starts the next epoch; with one size it is the fixed sequence.</summary>
    [Fact]
    public void Batches_of_changing_size_follow_the_same_order_and_start_a_new_epoch_when_they_do_not_fit()
    {
        var sampler = new EpochSampler(1000, 100, seed: 3, shuffle: true);
        Assert.Equal(sampler.Take(4).SampleIds, sampler.Take(4, 0, 400, 100).SampleIds);
        var order = sampler.OrderOf(0);
        Assert.Equal(order.Skip(130).Take(250), sampler.Take(7, 0, 130, 250).SampleIds);
        var next = sampler.Take(8, 1, 0, 300);
        Assert.Equal(sampler.OrderOf(1).Take(300), next.SampleIds);
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Take(9, 0, 900, 101));
    }
}
