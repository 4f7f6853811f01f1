namespace BatchCluster.Core.Gradients;

/// <summary>What the coordinator does with a share whose gradient norm is far from the step's others (docs/robustness.md, "Answers checked").</summary>
public enum OutlierPolicy
{
    /// <summary>Not looked at.</summary>
    Off,
    /// <summary>Logged (<c>ShareOutlier</c>) and averaged in as computed: the step stays the whole batch's gradient of what the workers sent.</summary>
    Log,
    /// <summary>Logged, and the share is treated as a bad one: its worker is quarantined and its samples are computed by others.</summary>
    Quarantine,
}

/// <summary>One share far from the step's others: its mean gradient's norm, the step's median, and how far out it is.</summary>
/// <param name="Place">The share's place in plan order.</param>
/// <param name="Ratio">Its mean gradient's norm over the median share's.</param>
/// <param name="Allowed">The bound it crossed: the largest ratio allowed for its size when it is too large, the smallest when too small.</param>
public readonly record struct ShareOutlier(int Place, int Samples, double MeanGradientNorm, double MedianMeanGradientNorm, double Ratio, double Allowed);

/// <summary>
/// Finds shares whose gradient is far larger or smaller than the step's others would allow — finite garbage such as
/// 1e30 or zeros — from the norms of the shares' mean gradients (√(|Σg|²)/n), against their median over the step.
/// <para>How far honest shares spread depends on their size and the regime of training: where the gradient's noise
/// dominates, a share of n samples has a mean of norm ∝ 1/√n; where its signal dominates, ∝ 1. So a share of n
/// samples beside a median share of m is allowed a factor <see cref="Factor"/> beyond both: above, up to
/// Factor·max(1, √(m/n)) times the median; below, down to the median / (Factor·max(1, √(n/m))). Honest shares stay
/// within a factor of about 3 of that in our runs; garbage of another scale does not. Plausible wrong values of the
/// right scale are not caught by norms (docs/robustness.md says so).</para>
/// <para>The median is taken over <em>workers</em>, not shares: after a re-plan one worker may hold several shares of a
/// step, and a bad worker with two shares among four would otherwise move the median to its own scale and have the
/// honest shares flagged (seen in CI: the honest workers were quarantined and the bad one's 1e6× gradient applied). A
/// worker's value is the median of its shares' means. It takes three workers to have a median that one bad worker
/// cannot move; with fewer nothing is flagged.</para>
/// </summary>
public static class ShareOutliers
{
    /// <summary>The allowance beyond honest spread (documented; see the class remarks).</summary>
    public const double Factor = 10;

    /// <summary>The fewest distinct workers a step's shares must come from for their median to outvote one bad worker.</summary>
    public const int FewestWorkers = 3;

    /// <param name="samples">Each share's sample count, in plan order.</param>
    /// <param name="sumSquaredNorms">Each share's squared L2 norm of its gradient SUM, in plan order.</param>
    /// <param name="workers">Each share's worker (the coordinator's key), in plan order.</param>
    /// <returns>The outliers, in plan order; null when there are none, fewer than <see cref="FewestWorkers"/> workers, or a
    /// norm is not finite (the NaN policy decides those). Nothing is allocated when there are none (it runs at every step).</returns>
    public static List<ShareOutlier>? Find(ReadOnlySpan<int> samples, ReadOnlySpan<double> sumSquaredNorms, ReadOnlySpan<int> workers)
    {
        int count = samples.Length;
        if (sumSquaredNorms.Length != count || workers.Length != count) throw new ArgumentException("one norm and one worker per share");
        if (count < FewestWorkers) return null;
        Span<double> means = count <= 64 ? stackalloc double[count] : new double[count];
        Span<double> scratch = count <= 64 ? stackalloc double[count] : new double[count];
        Span<double> perWorker = count <= 64 ? stackalloc double[count] : new double[count];
        for (int i = 0; i < count; i++)
        {
            double squared = sumSquaredNorms[i];
            if (samples[i] <= 0 || !double.IsFinite(squared) || squared < 0) return null;
            means[i] = Math.Sqrt(squared) / samples[i];
        }
        int workerCount = 0;
        for (int i = 0; i < count; i++)
        {
            if (workers[..i].Contains(workers[i])) continue; // counted with its first share
            int shares = 0;
            for (int j = i; j < count; j++)
                if (workers[j] == workers[i]) scratch[shares++] = means[j];
            perWorker[workerCount++] = Numerics.Statistics.MedianInPlace(scratch[..shares]);
        }
        if (workerCount < FewestWorkers) return null;
        double median = Numerics.Statistics.MedianInPlace(perWorker[..workerCount]);
        for (int i = 0; i < count; i++) scratch[i] = samples[i];
        double medianSize = Numerics.Statistics.MedianInPlace(scratch);
        List<ShareOutlier>? found = null;
        for (int i = 0; i < count; i++)
        {
            double above = Factor * Math.Max(1, Math.Sqrt(medianSize / samples[i]));
            double below = Factor * Math.Max(1, Math.Sqrt(samples[i] / medianSize));
            double ratio = median > 0 ? means[i] / median : means[i] > 0 ? double.PositiveInfinity : 1;
            if (ratio > above) (found ??= []).Add(new ShareOutlier(i, samples[i], means[i], median, ratio, above));
            else if (ratio * below < 1) (found ??= []).Add(new ShareOutlier(i, samples[i], means[i], median, ratio, 1 / below));
        }
        return found;
    }

    /// <summary>
    /// Whether a worker's reported squared norm of its gradient sum is the one the coordinator computes from the values that
    /// arrived (the noise scale and the outlier check use the reported one). Both non-finite agree (the NaN policy decides).
    /// Otherwise the tolerance is relative: in float32 a different summation order moves it by ~1e-15 (1e-6 allowed, far
    /// below anything that could steer an estimate); sent as bfloat16, each value is rounded to 8 significant bits
    /// (relative error ≤ 2⁻⁸ in value, so ≤ ~0.008 in the squared norm: 0.02 allowed).
    /// </summary>
    public static bool NormAgrees(double reported, double computed, Training.TransferPrecision precision)
    {
        if (double.IsFinite(reported) != double.IsFinite(computed)) return false;
        if (!double.IsFinite(computed)) return true;
        double tolerance = precision == Training.TransferPrecision.Bf16 ? 2e-2 : 1e-6;
        return Math.Abs(reported - computed) <= tolerance * Math.Max(Math.Abs(reported), Math.Abs(computed));
    }
}
