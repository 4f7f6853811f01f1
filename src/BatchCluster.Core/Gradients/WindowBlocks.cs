using BatchCluster.Core.Sampling;

namespace BatchCluster.Core.Gradients;

/// <summary>
/// Which blocks of the model a noise window reads (<see cref="PersistentGradient"/>), and what each read block stands for. Adding
/// every step's mean to a model-sized sum costs the coordinator 1.6 MB of memory traffic a step for the MLP (43 µs, 2.6 % of a
/// step at B 128); the squared norm of the sum is all the window needs, and a random sample of blocks estimates it without bias.
/// <para>Blocks are <see cref="BlockFloats"/> values, the blocks the coordinator averages in (ExactAverage). A tensor that holds at
/// least <see cref="MinimumSampledBlocks"/> whole blocks is a stratum: each window reads ⌈n/<see cref="SampleEvery"/>⌉ of its n
/// blocks, drawn uniformly without replacement, each weighing n/k (the inverse of its chance to be drawn: Horvitz–Thompson, so
/// the weighted sum of the read blocks' squared norms has the whole sum's squared norm as its mean). Every other block — small
/// tensors (biases, the last layer, which carry much of the signal) and blocks that straddle two tensors — is read in every
/// window with weight 1. The draw depends on the run's seed and the window's index only, so a resumed run draws the same.</para>
/// </summary>
public sealed class WindowBlocks
{
    public const int BlockFloats = ExactAverage.BlockFloats;
    /// <summary>A stratum is read at one block in this many (rounded up).</summary>
    public const int SampleEvery = 8;
    /// <summary>Tensors with fewer whole blocks are read whole.</summary>
    public const int MinimumSampledBlocks = 16;

    private readonly int[][] _strata;
    private readonly int[] _order;      // a stratum's blocks, partly shuffled by a draw (reused: a draw allocates nothing)
    private readonly double[] _weights; // per block, in the current window: 0 = not read
    private readonly long _seed;

    /// <param name="parameterCount">The model's size.</param>
    /// <param name="tensorSizes">Its tensors' sizes in the flat order (ParameterLayout); they must add up to the model's size.</param>
    public WindowBlocks(int parameterCount, IReadOnlyList<int> tensorSizes, long seed)
    {
        if (tensorSizes.Sum(s => (long)s) != parameterCount)
            throw new ArgumentException($"tensors of {tensorSizes.Sum(s => (long)s)} values for a model of {parameterCount}", nameof(tensorSizes));
        int blocks = (parameterCount + BlockFloats - 1) / BlockFloats;
        _weights = new double[blocks];
        _seed = seed;
        var strata = new List<int[]>();
        int offset = 0;
        foreach (int size in tensorSizes)
        {
            int first = (offset + BlockFloats - 1) / BlockFloats, end = (offset + size) / BlockFloats; // whole blocks inside
            if (end - first >= MinimumSampledBlocks) strata.Add(Enumerable.Range(first, end - first).ToArray());
            offset += size;
        }
        _strata = [.. strata];
        _order = new int[_strata.Length == 0 ? 0 : _strata.Max(stratum => stratum.Length)];
        Draw(0);
    }

    public int Count => _weights.Length;

    /// <summary>Whether the current window reads block <paramref name="block"/>.</summary>
    public bool Reads(int block) => _weights[block] > 0;

    /// <summary>What the block's squared norm stands for in the current window (1 where it is always read; 0 where not read).</summary>
    public double WeightOf(int block) => _weights[block];

    /// <summary>Blocks the current window reads.</summary>
    public int ReadCount => _weights.Count(w => w > 0);

    /// <summary>Chooses the blocks of window <paramref name="window"/>.</summary>
    public void Draw(long window)
    {
        Array.Fill(_weights, 1.0);
        var random = SplitMix64.For(_seed, window);
        foreach (var stratum in _strata)
        {
            int take = (stratum.Length + SampleEvery - 1) / SampleEvery;
            foreach (int block in stratum) _weights[block] = 0;
            var order = _order.AsSpan(0, stratum.Length);
            stratum.CopyTo(order); // from the stratum's own order: the draw depends on the seed and the window only
            for (int i = 0; i < take; i++)
            {
                int j = i + random.NextInt(order.Length - i);
                (order[i], order[j]) = (order[j], order[i]);
                _weights[order[i]] = (double)stratum.Length / take;
            }
        }
    }
}
