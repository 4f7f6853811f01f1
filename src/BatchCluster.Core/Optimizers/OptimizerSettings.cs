namespace BatchCluster.Core.Optimizers;

public enum OptimizerKind { Sgd, Momentum, Adam }

/// <summary>
/// Hyper-parameters of the optimizer. Weight decay is L2 added to the gradient (PyTorch's
/// <c>weight_decay</c> for SGD and Adam), not decoupled AdamW decay.
/// </summary>
public sealed record OptimizerSettings(
    OptimizerKind Kind,
    double Momentum = 0.9,
    bool Nesterov = false,
    double WeightDecay = 0.0,
    double Beta1 = 0.9,
    double Beta2 = 0.999,
    double Epsilon = 1e-8)
{
    public IOptimizer Create(int parameterCount) => Kind switch
    {
        OptimizerKind.Sgd => new Sgd((float)WeightDecay),
        OptimizerKind.Momentum => new MomentumSgd(parameterCount, (float)Momentum, Nesterov, (float)WeightDecay),
        OptimizerKind.Adam => new Adam(parameterCount, (float)Beta1, (float)Beta2, (float)Epsilon, (float)WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "unknown optimizer"),
    };
}
