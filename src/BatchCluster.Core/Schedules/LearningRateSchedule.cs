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
}

/// <summary>
/// The learning rate of every step: the scaled peak rate, reached by a linear warm-up from
/// peak/W at step 0 to the peak at step W−1 (W = warm-up steps; no warm-up when W = 0).
/// </summary>
public sealed record LearningRateSchedule(double BaseLearningRate, LrScaling Scaling, int BaseBatch, int GlobalBatch, int WarmupSteps)
{
    /// <summary>Our default B₀: the reference batch of Goyal et al. for the linear rule.</summary>
    public const int DefaultBaseBatch = 256;

    public double PeakLearningRate => Scaling switch
    {
        LrScaling.None => BaseLearningRate,
        LrScaling.Linear => BaseLearningRate * GlobalBatch / BaseBatch,
        LrScaling.Sqrt => BaseLearningRate * Math.Sqrt((double)GlobalBatch / BaseBatch),
        _ => throw new ArgumentOutOfRangeException(nameof(Scaling), Scaling, "unknown LR scaling"),
    };

    public double At(long step) =>
        step < WarmupSteps ? PeakLearningRate * (step + 1) / WarmupSteps : PeakLearningRate;
}
