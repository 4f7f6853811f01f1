using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BatchCluster.Core.Models;

/// <summary>
/// Batch norm over ghost batches (--bn-batch K): in training, each batch-norm layer normalises every K consecutive samples of
/// the micro-batch separately, so what a sample's normalisation sees depends on K and on the global batch's order only — not
/// on the worker count, the micro-batch, or where a re-plan cut the shares (those are made of whole ghost batches). Each ghost
/// batch's per-channel mean and unbiased variance are added to <see cref="Sums"/>, which the worker returns with its gradient:
/// the coordinator updates the running statistics from the whole global batch's ghost batches (docs/batch-norm.md). The module's
/// own running buffers are not touched in training; evaluation uses the statistics the coordinator sends.
/// </summary>
internal sealed class GhostBatchNorm : IDisposable
{
    /// <summary>Per layer, where its sums sit in <see cref="Sums"/> (RunningStatistics.Layers).</summary>
    private readonly IReadOnlyList<(int At, int Channels)> _layers;
    /// <summary>Per layer: batch_norm writes the ghost batch's mean and unbiased variance here (momentum 1 replaces the old value).</summary>
    private readonly Tensor[] _means, _variances;

    public GhostBatchNorm(int size, IReadOnlyList<(int At, int Channels)> layers)
    {
        if (size < 2) throw new ArgumentOutOfRangeException(nameof(size), $"a ghost batch of {size} has no variance; use 2 or more");
        Size = size;
        _layers = layers;
        Sums = new double[layers.Sum(l => 2 * l.Channels)];
        _means = layers.Select(l => zeros(l.Channels)).ToArray();
        _variances = layers.Select(l => ones(l.Channels)).ToArray();
    }

    /// <summary>Samples per ghost batch.</summary>
    public int Size { get; }

    /// <summary>Since <see cref="Reset"/>: per layer, the sum over ghost batches of each channel's mean, then of its unbiased variance.</summary>
    public double[] Sums { get; }

    public void Reset() => Array.Clear(Sums);

    /// <summary>A pass of whole ghost batches (ModelReplica checks the share and the micro-batch).</summary>
    public Tensor Normalize(Tensor x, BatchNorm2d norm, int layer)
    {
        int ghosts = (int)(x.shape[0] / Size);
        if (ghosts == 1) return One(x, norm, layer);
        var parts = new Tensor[ghosts];
        for (int g = 0; g < ghosts; g++) parts[g] = One(x.narrow(0, g * Size, Size), norm, layer);
        return cat(parts, 0);
    }

    private Tensor One(Tensor ghost, BatchNorm2d norm, int layer)
    {
        var y = nn.functional.batch_norm(ghost, _means[layer], _variances[layer], norm.weight, norm.bias, training: true, momentum: 1.0, eps: norm.eps);
        var means = ParameterLayout.FloatsOf(_means[layer]);
        var variances = ParameterLayout.FloatsOf(_variances[layer]);
        var (at, channels) = _layers[layer];
        for (int c = 0; c < channels; c++)
        {
            Sums[at + c] += means[c];
            Sums[at + channels + c] += variances[c];
        }
        return y;
    }

    public void Dispose()
    {
        foreach (var t in _means.Concat(_variances)) t.Dispose();
    }
}
