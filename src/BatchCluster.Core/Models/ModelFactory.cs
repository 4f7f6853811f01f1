using TorchSharp;
using static TorchSharp.torch;

namespace BatchCluster.Core.Models;

public static class ModelFactory
{
    public const int ImageSide = 28;
    public const int ClassCount = 10;

    internal static nn.Module<Tensor, Tensor> Create(ModelSpec spec) => spec.Name switch
    {
        "mlp" => new MlpNetwork(ImageSide * ImageSide, spec.HiddenSizes, ClassCount),
        "cnn" => new CnnNetwork(ImageSide, ClassCount, batchNorm: false),
        "cnn-bn" => new CnnNetwork(ImageSide, ClassCount, batchNorm: true),
        _ => throw new ArgumentException($"unknown model '{spec.Name}'; use one of {string.Join(", ", ModelSpec.Names)}"),
    };

    private static readonly Lock SeedLock = new();

    /// <summary>
    /// The initial parameters for (spec, seed): TorchSharp's default initialisation under
    /// torch.manual_seed(seed), flattened in parameters() order. Every engine starts from these.
    /// </summary>
    public static float[] InitialParameters(ModelSpec spec, long seed)
    {
        // manual_seed is process-global; creating two models at once must not interleave.
        lock (SeedLock)
        {
            torch.manual_seed(seed);
            using var model = Create(spec);
            var flat = new float[ParameterLayout.Of(model).TotalCount];
            ParameterLayout.CopyOut(model, flat);
            return flat;
        }
    }

    public static ParameterLayout LayoutOf(ModelSpec spec)
    {
        using var model = Create(spec);
        return ParameterLayout.Of(model);
    }
}
