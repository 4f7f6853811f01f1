using BatchCluster.Core.Models;

namespace BatchCluster.Gpu;

/// <summary>
/// Initial MLP parameters without TorchSharp, for tools that carry no libtorch (scripts/gpu-check.sh):
/// each layer's weight and bias uniform in ±1/√fan-in, the distribution of torch's default Linear
/// initialisation (kaiming_uniform with a = √5), drawn from .NET's seeded Random. Not the same numbers
/// as TorchSharp's (ModelFactory.InitialParameters), so runs from it compare by accuracy, not by bits.
/// </summary>
public static class ManagedInit
{
    public static float[] Mlp(ModelSpec spec, int seed)
    {
        if (spec.Name != "mlp") throw new NotSupportedException($"managed initialisation is for the MLP only, not '{spec}'");
        int[] widths = [28 * 28, .. spec.HiddenSizes, 10];
        var random = new Random(seed);
        var values = new List<float>();
        for (int l = 0; l < widths.Length - 1; l++)
        {
            float bound = 1f / MathF.Sqrt(widths[l]);
            int count = widths[l + 1] * widths[l] + widths[l + 1]; // weight [out × in], then bias [out]
            for (int i = 0; i < count; i++) values.Add((float)(random.NextDouble() * 2 - 1) * bound);
        }
        return values.ToArray();
    }
}
