using BatchCluster.Core.Gradients;
using BatchCluster.Core.Numerics;

namespace BatchCluster.Core.Probing;

/// <summary>
/// The two noise scales of McCandlish et al. (2018) at one point of training, measured directly rather than from one step's
/// shares: B_simple = tr Σ / |G|², which the run's estimator reads from the shares' norms, and B_noise = tr(HΣ) / GᵀHG, the one
/// their theory says governs how much a larger batch is worth (the critical batch). They agree when the Hessian H is a multiple
/// of the identity; they differ when the gradient's mean and its noise lie in directions of different curvature.
/// </summary>
/// <param name="GradSquared">|G|²: the squared norm of the mean gradient over the population.</param>
/// <param name="TraceSigma">tr Σ: the per-sample gradient variance (the population's covariance, summed over parameters).</param>
/// <param name="GradientCurvature">GᵀHG.</param>
/// <param name="TraceHSigma">tr(HΣ).</param>
/// <param name="TraceSigmaStandardError">The standard error of <paramref name="TraceSigma"/> (from the spread over the batches).</param>
/// <param name="TraceHSigmaStandardError">The standard error of <paramref name="TraceHSigma"/>.</param>
public sealed record NoiseScaleMeasurement(double GradSquared, double TraceSigma, double GradientCurvature, double TraceHSigma,
    double TraceSigmaStandardError, double TraceHSigmaStandardError)
{
    public double BSimple => TraceSigma / GradSquared;
    public double BNoise => TraceHSigma / GradientCurvature;
    /// <summary>The curvature the mean gradient sees: GᵀHG / |G|².</summary>
    public double CurvatureOfGradient => GradientCurvature / GradSquared;
    /// <summary>The curvature the noise sees: tr(HΣ) / tr Σ.</summary>
    public double CurvatureOfNoise => TraceHSigma / TraceSigma;
}

/// <summary>
/// Measures <see cref="NoiseScaleMeasurement"/> over a population of samples (docs/adaptive-batch.md, "What the estimator gets
/// wrong"). G is the population's mean gradient; K disjoint batches of b samples, drawn without replacement, give deviations
/// d_k = g_k − G whose expected square is (tr Σ / b)·(N − b)/(N − 1), and whose expected curvature d_kᵀHd_k is
/// (tr(HΣ) / b)·(N − b)/(N − 1), the same finite-population factor; both are inverted exactly. The curvature along a direction
/// comes from the caller (on a model: <see cref="DirectionalCurvature"/>, on a held-out set so that H is independent of the
/// directions). Plain code over two functions, so it is tested on synthetic gradients whose H and Σ are known.
/// </summary>
public static class NoiseScaleProbe
{
    /// <param name="population">The samples G and Σ are taken over.</param>
    /// <param name="batchSize">b: samples per deviation batch.</param>
    /// <param name="batches">K: deviation batches (K·b ≤ the population).</param>
    /// <param name="meanGradient">Writes the mean gradient over the given samples into the buffer.</param>
    /// <param name="curvature">vᵀHv for a direction v.</param>
    public static NoiseScaleMeasurement Measure(int[] population, int batchSize, int batches, long seed, int parameterCount,
        Action<ReadOnlySpan<int>, float[]> meanGradient, Func<float[], double> curvature)
    {
        int n = population.Length;
        if (batchSize < 1 || batches < 2 || (long)batchSize * batches > n)
            throw new ArgumentException($"{batches} batches of {batchSize} do not fit in a population of {n} (and at least 2 are needed)");
        var mean = new float[parameterCount];
        meanGradient(population, mean);
        double gradSquared = FlatMath.SquaredNorm(mean);
        double gradientCurvature = curvature(mean);

        var order = (int[])population.Clone();
        new Random(unchecked((int)seed)).Shuffle(order);
        double finitePopulation = (n - 1.0) / (n - batchSize); // inverts Var(batch mean) = (σ²/b)(N − b)/(N − 1)
        var deviation = new float[parameterCount];
        var sigma = new double[batches];
        var hSigma = new double[batches];
        for (int k = 0; k < batches; k++)
        {
            meanGradient(order.AsSpan(k * batchSize, batchSize), deviation);
            for (int i = 0; i < parameterCount; i++) deviation[i] -= mean[i];
            sigma[k] = batchSize * finitePopulation * FlatMath.SquaredNorm(deviation);
            hSigma[k] = batchSize * finitePopulation * curvature(deviation);
        }
        return new NoiseScaleMeasurement(gradSquared, sigma.Average(), gradientCurvature, hSigma.Average(),
            StandardError(sigma), StandardError(hSigma));
    }

    /// <summary>
    /// B_simple as a run's estimator reads it (<see cref="GradientNoiseScale"/>): global batches of <paramref name="globalBatch"/>
    /// samples cut into <paramref name="shares"/> equal shares, the two-batch-size estimates of |G|² and tr Σ averaged over
    /// <paramref name="count"/> batches (not smoothed: the mean is what the smoothing tends to); B_simple is their ratio.
    /// </summary>
    /// <param name="gradientSum">Writes the sum of the per-sample gradients over the given samples into the buffer.</param>
    public static (double GradSquared, double TraceSigma) SharesEstimate(int[] population, int globalBatch, int shares, int count, long seed,
        int parameterCount, Action<ReadOnlySpan<int>, float[]> gradientSum)
    {
        if (globalBatch % shares != 0 || shares < 2) throw new ArgumentException($"a global batch of {globalBatch} does not split into {shares} equal shares");
        if ((long)globalBatch * count > population.Length) throw new ArgumentException($"{count} batches of {globalBatch} do not fit in {population.Length} samples");
        var order = (int[])population.Clone();
        new Random(unchecked((int)seed) ^ 0x5EED).Shuffle(order);
        int share = globalBatch / shares;
        var sum = new float[parameterCount];
        var total = new double[parameterCount];
        var norms = new (int Size, double SumSquaredNorm)[shares];
        var estimator = new GradientNoiseScale();
        double gradSquared = 0, traceSigma = 0;
        for (int c = 0; c < count; c++)
        {
            Array.Clear(total);
            for (int s = 0; s < shares; s++)
            {
                gradientSum(order.AsSpan(c * globalBatch + s * share, share), sum);
                norms[s] = (share, FlatMath.SquaredNorm(sum));
                for (int i = 0; i < parameterCount; i++) total[i] += sum[i];
            }
            double meanSquared = 0;
            foreach (double t in total) meanSquared += t / globalBatch * (t / globalBatch);
            var estimate = estimator.Update(norms, globalBatch, meanSquared);
            gradSquared += estimate.GradSquared;
            traceSigma += estimate.TraceSigma;
        }
        return (gradSquared / count, traceSigma / count);
    }

    /// <summary>
    /// vᵀHv of the mean loss over <paramref name="samples"/> at <paramref name="parameters"/>, by a central difference of the
    /// gradient along v's unit direction u: uᵀ(∇L(θ + hu) − ∇L(θ − hu)) / 2h, times |v|². <paramref name="step"/> is h in the
    /// parameters' own units (the model's parameter vector has norm ~10–30; h = 1e-2 moves it by well under a part in a
    /// thousand). The replica is left holding <paramref name="parameters"/>.
    /// </summary>
    public static double DirectionalCurvature(Models.IModelReplica replica, Data.ImageDataSet data, int[] samples, float[] parameters,
        float[] direction, double step, int microBatch = 512)
    {
        double norm = Math.Sqrt(FlatMath.SquaredNorm(direction));
        if (norm == 0) return 0;
        int count = parameters.Length;
        var shifted = new float[count];
        var plus = new float[count];
        var minus = new float[count];
        for (int i = 0; i < count; i++) shifted[i] = (float)(parameters[i] + step * direction[i] / norm);
        replica.LoadParameters(shifted);
        replica.ComputeGradientSum(data, samples, microBatch, plus);
        for (int i = 0; i < count; i++) shifted[i] = (float)(parameters[i] - step * direction[i] / norm);
        replica.LoadParameters(shifted);
        replica.ComputeGradientSum(data, samples, microBatch, minus);
        replica.LoadParameters(parameters);
        double along = 0;
        for (int i = 0; i < count; i++) along += (double)direction[i] / norm * ((double)plus[i] - minus[i]);
        return along / (2 * step * samples.Length) * norm * norm;
    }

    /// <summary>The mean gradient of the loss over <paramref name="samples"/> at the replica's parameters.</summary>
    public static void MeanGradient(Models.IModelReplica replica, Data.ImageDataSet data, ReadOnlySpan<int> samples, float[] into, int microBatch = 512)
    {
        replica.ComputeGradientSum(data, samples, Math.Min(microBatch, samples.Length), into);
        FlatMath.ScaleInPlace(into, 1f / samples.Length);
    }

    /// <summary>
    /// How much of the mean gradient persists from step to step: over the full gradients G_t of consecutive steps, the mean of
    /// |G_t|² against |mean_t G_t|². Equal when the gradient keeps its direction; the second far below the first when the
    /// iterate oscillates (momentum in a sharp direction) and most of each step's gradient is undone by the next ones.
    /// </summary>
    public static (double MeanOfSquares, double SquareOfMean) Persistence(IReadOnlyList<float[]> gradients)
    {
        if (gradients.Count == 0) throw new ArgumentException("no gradients");
        var mean = new double[gradients[0].Length];
        double squares = 0;
        foreach (var g in gradients)
        {
            squares += FlatMath.SquaredNorm(g);
            for (int i = 0; i < mean.Length; i++) mean[i] += g[i];
        }
        double squareOfMean = 0;
        foreach (double m in mean) squareOfMean += m / gradients.Count * (m / gradients.Count);
        return (squares / gradients.Count, squareOfMean);
    }

    private static double StandardError(double[] values)
    {
        double mean = values.Average();
        double squares = 0;
        foreach (double v in values) squares += (v - mean) * (v - mean);
        return Math.Sqrt(squares / (values.Length - 1) / values.Length);
    }
}
