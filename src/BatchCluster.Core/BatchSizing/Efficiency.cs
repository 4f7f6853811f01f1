namespace BatchCluster.Core.BatchSizing;

/// <summary>
/// What a batch M is worth per sample, from the gradient noise: the statistical efficiency of Pollux (Qiao et al., OSDI '21) and the
/// learning-rate gain of AdaScale (Johnson et al., ICML '20). Both read the smoothed |G|² (μ²) and tr Σ of the run, taken relative to
/// the reference batch M0 whose learning rate the user tuned (--base-batch).
/// </summary>
public static class Efficiency
{
    /// <summary>
    /// E(M) = (B_noise + M0) / (B_noise + M): the progress one sample makes at batch M, relative to one at M0 (1 at M0; below 1 above it,
    /// where more of each step's samples only reduce noise that was already small). B_noise = tr Σ / |G|² (<see cref="NoiseScale"/>);
    /// unknown (NaN) or all noise (+∞) gives 1 at every batch: then no batch is worth less per sample than another.
    /// </summary>
    public static double Statistical(int batch, int referenceBatch, double noiseScale)
    {
        if (!double.IsFinite(noiseScale) || noiseScale < 0) return 1;
        return (noiseScale + referenceBatch) / (noiseScale + batch);
    }

    /// <summary>
    /// E(M) where the rate may rise at most <paramref name="maxGain"/>-fold over the base rate (--max-lr): a step at M is then worth at
    /// most maxGain M0-steps, whatever the noise would allow, so a sample at most maxGain · M0 / M of one at M0.
    /// </summary>
    public static double Statistical(int batch, int referenceBatch, double noiseScale, double maxGain) =>
        Math.Min(Statistical(batch, referenceBatch, noiseScale), maxGain * referenceBatch / batch);

    /// <summary>B_noise = tr Σ / |G|² from smoothed estimates; +∞ when |G|² is not positive (all noise), NaN when unknown.</summary>
    public static double NoiseScale(double gradSquared, double traceSigma)
    {
        if (!double.IsFinite(gradSquared) || !double.IsFinite(traceSigma)) return double.NaN;
        if (gradSquared <= 0) return double.PositiveInfinity;
        return Math.Max(0, traceSigma) / gradSquared;
    }

    /// <summary>
    /// AdaScale's gain r = (σ² + μ²) / (σ²/S + μ²) with S = M/M0 and σ² = tr Σ / M0 (the variance of an M0-sample mean gradient):
    /// how many M0-steps one step at M is worth. Between 1 and S (S ≤ r ≤ 1 when M &lt; M0): S when the gradient is all noise, 1 when
    /// it has none. Negative estimates are clipped to 0 first; unknown ones (the first steps) give 1.
    /// </summary>
    public static double AdaScaleGain(int batch, int referenceBatch, double gradSquared, double traceSigma)
    {
        double scale = (double)batch / referenceBatch;
        if (!double.IsFinite(gradSquared) || !double.IsFinite(traceSigma)) return 1;
        double mu2 = Math.Max(0, gradSquared);
        double sigma2 = Math.Max(0, traceSigma) / referenceBatch;
        if (sigma2 + mu2 <= 0) return 1;
        double gain = (sigma2 + mu2) / (sigma2 / scale + mu2);
        return Math.Clamp(gain, Math.Min(1, scale), Math.Max(1, scale));
    }
}
