using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace BatchCluster.Gpu;

/// <summary>
/// An ILGPU accelerator a worker computes on: <c>ilgpu-cpu</c> (ILGPU's CPU accelerator: the same
/// kernels on any machine, slowly; what CI tests) or <c>cuda</c> / <c>cuda:N</c> (the first, or the
/// N-th, CUDA device the CUDA driver lists). Math in kernels goes through ILGPU.Algorithms, so it
/// compiles for CUDA as well.
/// </summary>
public sealed class IlgpuDevice : IDisposable
{
    private readonly Context _context;

    private IlgpuDevice(Context context, Accelerator accelerator, string name)
    {
        _context = context;
        Accelerator = accelerator;
        Name = name;
    }

    public Accelerator Accelerator { get; }

    /// <summary>As a worker registers it: "ilgpu-cpu", or "cuda:0 NVIDIA H200 (139 GiB)".</summary>
    public string Name { get; }

    /// <summary>Whether <paramref name="device"/> names an ILGPU device (else it is TorchSharp's "cpu").</summary>
    public static bool Names(string device) => device == "ilgpu-cpu" || device == "cuda" || device.StartsWith("cuda:", StringComparison.Ordinal);

    /// <exception cref="ArgumentException">Not an ILGPU device name, no such CUDA device here (the message says what was looked for),
    /// or a device ILGPU could not open (the driver's or ILGPU's own error, named).</exception>
    public static IlgpuDevice Open(string device)
    {
        try
        {
            return OpenOrThrow(device);
        }
        catch (Exception e) when (e is AcceleratorException or DllNotFoundException or TypeInitializationException or InvalidOperationException)
        {
            throw new ArgumentException($"--device {device}: ILGPU could not open it ({(e.InnerException ?? e).Message})", e);
        }
    }

    private static IlgpuDevice OpenOrThrow(string device)
    {
        if (device == "ilgpu-cpu")
        {
            var context = Context.Create(builder => builder.CPU().EnableAlgorithms());
            return new IlgpuDevice(context, context.CreateCPUAccelerator(0), "ilgpu-cpu");
        }
        if (!Names(device)) throw new ArgumentException($"--device must be cpu, ilgpu-cpu, cuda or cuda:N, not '{device}'");
        int index = 0;
        if (device.StartsWith("cuda:", StringComparison.Ordinal) && (!int.TryParse(device.AsSpan(5), out index) || index < 0))
            throw new ArgumentException($"--device {device}: the CUDA device number must be a whole number from 0, e.g. cuda:0");
        var cuda = Context.Create(builder => builder.Cuda().EnableAlgorithms());
        var devices = cuda.GetCudaDevices();
        if (index >= devices.Count)
        {
            cuda.Dispose();
            throw new ArgumentException(devices.Count == 0
                ? $"--device {device}: ILGPU found no CUDA device (it looks for the NVIDIA driver's libcuda.so and the devices it lists); use --device cpu or ilgpu-cpu here"
                : $"--device {device}: there are {devices.Count} CUDA devices here (cuda:0 … cuda:{devices.Count - 1})");
        }
        var chosen = devices[index];
        var accelerator = chosen.CreateAccelerator(cuda);
        return new IlgpuDevice(cuda, accelerator, $"cuda:{index} {chosen.Name} ({chosen.MemorySize / (1L << 30)} GiB)");
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        _context.Dispose();
    }
}
