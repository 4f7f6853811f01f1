namespace BatchCluster.Core.Gradients;

/// <summary>One step's noise-scale figures: the raw unbiased estimates and the smoothed ratio.</summary>
public readonly record struct NoiseScaleEstimate(double GradSquared, double TraceSigma, double EmaGradSquared, double EmaTraceSigma)
{
    /// <summary>B_simple = EMA(tr Σ) / EMA(|G|²); NaN until both averages exist.</summary>
    public double BSimple => EmaGradSquared > 0 ? EmaTraceSigma / EmaGradSquared : double.NaN;
}

/// <summary>The state of <see cref="GradientNoiseScale"/>'s smoothed averages (before bias correction).</summary>
public readonly record struct NoiseScaleState(double EmaGradSquared, double EmaTraceSigma, double Weight);

/// <summary>
/// The gradient noise scale (McCandlish et al. 2018) for free, from what every step already has:
/// each share's gradient-sum norm (batch b_i) and the averaged gradient's norm (batch B). With
/// |G_b|² = ‖grad_sum_i‖² / b_i² and |G_B|² the squared norm of the step's mean gradient,
/// the unbiased two-batch-size estimates are
///   |G|²  ≈ (B·|G_B|² − b·|G_b|²) / (B − b),
///   tr Σ ≈ (|G_b|² − |G_B|²) / (1/b − 1/B),
/// averaged over the step's shares. Single estimates are noisy and may be negative, so
/// B_simple is the ratio of exponential moving averages (decay <see cref="Decay"/>), not the
/// average of ratios. A step with a single share gives no estimate by itself: a run that needs one computes such a share
/// as two halves (ShareHalves) and passes the halves here as its shares.
/// </summary>
public sealed class GradientNoiseScale(double decay = GradientNoiseScale.DefaultDecay)
{
    public const double DefaultDecay = 0.95;

    private double _emaGradSquared;
    private double _emaTraceSigma;
    private double _weight; // bias correction of the EMAs, as in Adam: they start at 0

    public double Decay { get; } = decay;

    /// <summary>The smoothed averages and their bias correction, to continue from (a checkpoint of an adaptive run).</summary>
    public NoiseScaleState State => new(_emaGradSquared, _emaTraceSigma, _weight);

    /// <summary>Continues from <paramref name="state"/> (what <see cref="State"/> gave).</summary>
    public void Restore(NoiseScaleState state) => (_emaGradSquared, _emaTraceSigma, _weight) = (state.EmaGradSquared, state.EmaTraceSigma, state.Weight);

    /// <summary>The smoothed |G|² (bias-corrected; NaN before the first estimate).</summary>
    public double SmoothedGradSquared => Corrected(_emaGradSquared);

    /// <summary>The smoothed tr Σ (bias-corrected; NaN before the first estimate).</summary>
    public double SmoothedTraceSigma => Corrected(_emaTraceSigma);

    /// <param name="decay">This step's smoothing factor instead of <see cref="Decay"/> (an adaptive batch scales it with the batch, so
    /// the averages span a similar number of samples at any batch).</param>
    public NoiseScaleEstimate Update(IReadOnlyList<(int Size, double SumSquaredNorm)> shares, int globalBatch, double meanGradientSquaredNorm,
        double? decay = null)
    {
        double d = decay ?? Decay;
        double g2 = 0, trace = 0;
        int used = 0;
        foreach (var (size, sumSquaredNorm) in shares)
        {
            if (size <= 0 || size >= globalBatch) continue;
            double small = sumSquaredNorm / ((double)size * size);
            g2 += (globalBatch * meanGradientSquaredNorm - size * small) / (globalBatch - size);
            trace += (small - meanGradientSquaredNorm) / (1.0 / size - 1.0 / globalBatch);
            used++;
        }
        if (used == 0)
            return new NoiseScaleEstimate(double.NaN, double.NaN, Corrected(_emaGradSquared), Corrected(_emaTraceSigma));
        g2 /= used;
        trace /= used;
        _emaGradSquared = d * _emaGradSquared + (1 - d) * g2;
        _emaTraceSigma = d * _emaTraceSigma + (1 - d) * trace;
        _weight = d * _weight + (1 - d);
        return new NoiseScaleEstimate(g2, trace, Corrected(_emaGradSquared), Corrected(_emaTraceSigma));
    }

    private double Corrected(double ema) => _weight > 0 ? ema / _weight : double.NaN;
}
