namespace BatchCluster.Core.Models;

/// <summary>Which network to train. Names are the CLI's: <c>mlp</c>, <c>cnn</c>, <c>cnn-bn</c>.</summary>
public sealed record ModelSpec(string Name, IReadOnlyList<int> HiddenSizes)
{
    public static readonly string[] Names = ["mlp", "cnn", "cnn-bn"];

    /// <summary>The widest MLP layer accepted: 784 × 65,536 weights is 205 MB; wider ones fail deep inside libtorch.</summary>
    public const int MaxHiddenSize = 65_536;
    public static readonly int[] DefaultMlpHidden = [256];

    public static ModelSpec Mlp(params int[] hidden) => new("mlp", hidden.Length == 0 ? DefaultMlpHidden : hidden);
    public static ModelSpec Cnn(bool batchNorm) => new(batchNorm ? "cnn-bn" : "cnn", []);

    public bool HasBatchNorm => Name == "cnn-bn";

    /// <summary>The channels of each batch-norm layer in forward order (empty without batch norm): the shape of the running statistics.</summary>
    public IReadOnlyList<int> NormChannels => HasBatchNorm ? CnnChannels : [];

    /// <summary>The CNN's conv channels (its batch-norm layers normalise these).</summary>
    internal static readonly int[] CnnChannels = [32, 64];

    public override string ToString() => Name == "mlp" ? $"mlp({string.Join('-', HiddenSizes)})" : Name;
}
