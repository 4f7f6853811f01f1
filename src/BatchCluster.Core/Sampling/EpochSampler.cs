namespace BatchCluster.Core.Sampling;

/// <summary>
/// Deterministic global batches. Epoch e visits the training set in the order of a permutation
/// fixed by (seed, e) — or in file order when shuffling is off — and cuts it into consecutive
/// global batches. The sequence never depends on the number of workers (promise 2, docs/architecture.md).
///
/// The last partial batch of an epoch is dropped: every step then has exactly the configured
/// global batch, which is what batch-size experiments compare. At most B − 1 samples per epoch
/// are skipped, and with shuffling a different subset each epoch.
///
/// A batch that changes between steps (docs/adaptive-batch.md) takes the next <c>size</c> positions
/// of the same order from a sample offset (<see cref="Take(long, int, int, int)"/>); a batch that
/// no longer fits in the epoch's rest starts the next epoch. With one size throughout, that is the
/// same sequence as <see cref="Take(long)"/>.
/// </summary>
public sealed class EpochSampler
{
    private readonly int _datasetSize;
    private readonly long _seed;
    private readonly bool _shuffle;
    private int _cachedEpoch = -1;
    private int[] _cachedOrder = [];

    public EpochSampler(int datasetSize, int globalBatch, long seed, bool shuffle)
    {
        if (globalBatch <= 0)
            throw new ArgumentOutOfRangeException(nameof(globalBatch), $"global batch {globalBatch} must be positive");
        if (globalBatch > datasetSize)
            throw new ArgumentOutOfRangeException(nameof(globalBatch),
                $"global batch {globalBatch} is larger than the {datasetSize} training samples; use a smaller --global-batch");
        _datasetSize = datasetSize;
        GlobalBatchSize = globalBatch;
        _seed = seed;
        _shuffle = shuffle;
        StepsPerEpoch = datasetSize / globalBatch;
    }

    public int GlobalBatchSize { get; }
    public int StepsPerEpoch { get; }

    public int DatasetSize => _datasetSize;

    /// <summary>Step <paramref name="step"/> of a run whose batch is always <see cref="GlobalBatchSize"/>.</summary>
    public GlobalBatch Take(long step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step));
        int epoch = checked((int)(step / StepsPerEpoch));
        int index = (int)(step % StepsPerEpoch);
        return Take(step, epoch, index * GlobalBatchSize, GlobalBatchSize);
    }

    /// <summary>Positions [<paramref name="offset"/>, offset + <paramref name="size"/>) of epoch <paramref name="epoch"/>'s order, as step <paramref name="step"/>.</summary>
    public GlobalBatch Take(long step, int epoch, int offset, int size)
    {
        if (size <= 0 || size > _datasetSize)
            throw new ArgumentOutOfRangeException(nameof(size), $"a global batch of {size} from {_datasetSize} training samples");
        if (epoch < 0 || offset < 0 || offset + size > _datasetSize)
            throw new ArgumentOutOfRangeException(nameof(offset), $"samples [{offset}, {offset + size}) of an epoch of {_datasetSize}");
        if (epoch != _cachedEpoch)
        {
            // One buffer for every epoch's order: a new one per epoch cost 4 B × the data set each epoch.
            if (_cachedOrder.Length != _datasetSize) _cachedOrder = new int[_datasetSize];
            FillOrder(epoch, _cachedOrder);
            _cachedEpoch = epoch;
        }
        return new GlobalBatch(step, epoch, offset, _cachedOrder.AsSpan(offset, size).ToArray());
    }

    /// <summary>The visiting order of one epoch (a new array): a Fisher–Yates shuffle driven by (seed, epoch).</summary>
    public int[] OrderOf(int epoch)
    {
        var order = new int[_datasetSize];
        FillOrder(epoch, order);
        return order;
    }

    private void FillOrder(int epoch, int[] order)
    {
        for (int i = 0; i < order.Length; i++) order[i] = i;
        if (!_shuffle) return;
        var rng = SplitMix64.For(_seed, epoch);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
    }
}
