namespace BatchCluster.Core.Models;

/// <summary>
/// A batch-norm model's running statistics as one flat vector, the coordinator's under --bn-batch: per batch-norm layer in
/// forward order, its channels' running means, then their running variances (docs/batch-norm.md). Workers return, with each
/// share's gradient, the sums over the share's ghost batches of each channel's mean and unbiased variance (the same layout);
/// sums of shares add up to the global batch's whatever the layout, and one update per step with their average,
/// <c>running ← (1 − m)·running + m·average</c>, m = <see cref="Momentum"/> (PyTorch's default), gives the same statistics on
/// every layout. One update per step, not one per ghost batch: with one per ghost batch the statistics would forget faster
/// the larger the global batch, and a batch-size experiment would change what evaluation sees.
/// </summary>
public static class RunningStatistics
{
    public const double Momentum = 0.1;

    /// <summary>Values in the vector: a mean and a variance per channel of every batch-norm layer (0 without batch norm).</summary>
    public static int Length(ModelSpec spec) => 2 * spec.NormChannels.Sum();

    /// <summary>Per batch-norm layer in forward order: where its means start (its variances follow them) and its channel count.</summary>
    public static IReadOnlyList<(int At, int Channels)> Layers(ModelSpec spec)
    {
        var layers = new List<(int, int)>(spec.NormChannels.Count);
        int at = 0;
        foreach (int channels in spec.NormChannels)
        {
            layers.Add((at, channels));
            at += 2 * channels;
        }
        return layers;
    }

    /// <summary>Before the first step: means 0, variances 1 (as PyTorch initialises its buffers).</summary>
    public static float[] Initial(ModelSpec spec)
    {
        var values = new float[Length(spec)];
        foreach (var (at, channels) in Layers(spec)) values.AsSpan(at + channels, channels).Fill(1f);
        return values;
    }

    /// <summary>Whether every variance in <paramref name="values"/> (this layout) is at least 0.</summary>
    public static bool VariancesNonNegative(ModelSpec spec, ReadOnlySpan<float> values)
    {
        foreach (var (at, channels) in Layers(spec))
            foreach (float variance in values.Slice(at + channels, channels))
                if (variance < 0) return false;
        return true;
    }

    /// <summary>One step's update from the sums over its <paramref name="ghostBatches"/> ghost batches.</summary>
    public static void Update(Span<float> running, ReadOnlySpan<double> sums, int ghostBatches)
    {
        if (sums.Length != running.Length) throw new ArgumentException($"{sums.Length} sums for {running.Length} running statistics");
        if (ghostBatches < 1) throw new ArgumentOutOfRangeException(nameof(ghostBatches), "a step has at least one ghost batch");
        for (int i = 0; i < running.Length; i++)
            running[i] = (float)((1 - Momentum) * running[i] + Momentum * (sums[i] / ghostBatches));
    }
}
