namespace BatchCluster.Core.Gradients;

/// <summary>
/// What the coordinator knows of a share besides its gradient values: its size, loss sum, the
/// squared norm of its gradient sum (for the noise scale), its compute time and who computed it.
/// In a ring reduction the values never reach the coordinator, so this is all a commit sees of a
/// share. <see cref="Finite"/>: whether the share's loss and every gradient value were finite
/// (from the values where the coordinator holds them, else from the loss and the squared norm,
/// which in double is finite exactly when every float value is: FlatMath.SquaredNorm).
/// </summary>
/// <param name="Halves">The share's two halves (size, squared norm of the gradient sum) where it was computed so for the noise estimate.</param>
public sealed record ShareTally(int SampleCount, double LossSum, double GradientSumSquaredNorm, double ComputeMilliseconds, string Worker, bool Finite,
    IReadOnlyList<(int Size, double SumSquaredNorm)>? Halves = null)
{
    /// <summary>A share reduced outside the coordinator: finite when its loss and squared norm are.</summary>
    public static ShareTally Reduced(int sampleCount, double lossSum, double gradientSumSquaredNorm, double computeMilliseconds, string worker) =>
        new(sampleCount, lossSum, gradientSumSquaredNorm, computeMilliseconds, worker,
            double.IsFinite(lossSum) && double.IsFinite(gradientSumSquaredNorm));
}
