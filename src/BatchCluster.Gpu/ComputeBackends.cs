using BatchCluster.Core.Models;

namespace BatchCluster.Gpu;

/// <summary>
/// The compute backends a worker can run on, by the name <c>--device</c> takes: <c>cpu</c> is TorchSharp
/// (<see cref="ModelReplica"/>); <c>ilgpu-cpu</c>, <c>cuda</c> and <c>cuda:N</c> are the ILGPU kernels
/// (<see cref="IlgpuMlpReplica"/>, the MLP only).
/// </summary>
public static class ComputeBackends
{
    public const string Help = "cpu (TorchSharp), ilgpu-cpu (the ILGPU kernels on ILGPU's CPU accelerator: the test path), cuda or cuda:N (the ILGPU kernels on a CUDA device; mlp only)";

    /// <summary>
    /// Whether <paramref name="device"/> can run <paramref name="model"/> (null: any, a worker node that learns its model later) here, by opening it once;
    /// its name as a worker registers it (e.g. "cuda:0 NVIDIA H200 (139 GiB)").
    /// </summary>
    /// <exception cref="ArgumentException">Not a device name, no such device here, or a model it does not run (the message says which).</exception>
    public static string Check(string device, ModelSpec? model)
    {
        if (device == "cpu") return "cpu";
        if (!IlgpuDevice.Names(device)) throw new ArgumentException($"--device must be cpu, ilgpu-cpu, cuda or cuda:N, not '{device}'");
        if (model is not null && model.Name != "mlp")
            throw new ArgumentException($"--device {device} runs the MLP only (--model mlp); '{model}' needs --device cpu");
        using var opened = IlgpuDevice.Open(device);
        lock (Names) Names[device] = opened.Name;
        return opened.Name;
    }

    private static readonly Dictionary<string, string> Names = new(StringComparer.Ordinal);

    /// <summary>The name <see cref="Check"/> found for <paramref name="device"/> (e.g. with the GPU's model and memory), or the device as given.</summary>
    public static string NameOf(string device)
    {
        lock (Names) return Names.GetValueOrDefault(device, device);
    }

    /// <summary>How a worker on <paramref name="device"/> makes its replica; null for TorchSharp's (the default everywhere).</summary>
    public static Func<ModelSpec, IModelReplica>? ReplicasFor(string device) =>
        device == "cpu" ? null : spec => new IlgpuMlpReplica(spec, IlgpuDevice.Open(device), ownsDevice: true);
}
