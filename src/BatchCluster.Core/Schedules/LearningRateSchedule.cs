namespace BatchCluster.Core.Schedules;

/// <summary>How the learning rate follows the global batch B relative to a base batch B₀.</summary>
public enum LrScaling
{
    /// <summary>lr = base lr, whatever B.</summary>
    None,
    /// <summary>lr = base lr · B / B₀ (Goyal et al. 2017).</summary>
    Linear,
    /// <summary>lr = base lr · √(B / B₀) (Hoffer et al. 2017).</summary>
    Sqrt,
    /// <summary>
    /// lr = base lr · r, AdaScale's gain r (Johnson et al. 2020) from the measured gradient noise, 1 ≤ r ≤ B/B₀; the warm-up counts
    /// scale-invariant iterations (τ += r per step) instead of steps (docs/adaptive-batch.md).
    /// </summary>
    AdaScale,
}

/// <summary>
/// The learning rate of every step: the scaled peak rate, reached by a linear warm-up from
/// peak/W at step 0 to the peak at step W−1 (W = warm-up steps; no warm-up when W = 0).
/// </summary>
public sealed record LearningRateSchedule(double BaseLearningRate, LrScaling Scaling, int BaseBatch, int GlobalBatch, int WarmupSteps)
{
    /// <summary>Our default B₀: the reference batch of Goyal et al. for the linear rule.</summary>
    public const int DefaultBaseBatch = 256;

    /// <summary>The peak rate at the configured global batch.</summary>
    public double PeakLearningRate => PeakFor(GlobalBatch);

    /// <summary>The peak rate at a global batch of <paramref name="batch"/> (AdaScale's gain is applied apart: TrainingSession).</summary>
    public double PeakFor(int batch) => Scaling switch
    {
        LrScaling.None or LrScaling.AdaScale => BaseLearningRate,
        LrScaling.Linear => BaseLearningRate * batch / BaseBatch,
        LrScaling.Sqrt => BaseLearningRate * Math.Sqrt((double)batch / BaseBatch),
        _ => throw new ArgumentOutOfRangeException(nameof(Scaling), Scaling, "unknown LR scaling"),
    };

    public double At(long step) => At(step, GlobalBatch);

    /// <summary>The rate after <paramref name="progress"/> iterations (steps, or AdaScale's τ) at a global batch of <paramref name="batch"/>.</summary>
    public double At(double progress, int batch) =>
        progress < WarmupSteps ? PeakFor(batch) * (progress + 1) / WarmupSteps : PeakFor(batch);
}
