namespace BatchCluster.Core.Models;

/// <summary>Sums over evaluated samples; partial results from several workers add up exactly.</summary>
public readonly record struct EvaluationResult(double LossSum, long Correct, long Count)
{
    public static EvaluationResult Empty => default;
    public double MeanLoss => Count == 0 ? double.NaN : LossSum / Count;
    public double Accuracy => Count == 0 ? double.NaN : (double)Correct / Count;
    public EvaluationResult Add(EvaluationResult other) => new(LossSum + other.LossSum, Correct + other.Correct, Count + other.Count);
}
