using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BatchCluster.Core.Native;

/// <summary>
/// Makes the MKL inside TorchSharp's libtorch use its fast GEMM kernels on AMD CPUs, by loading
/// <c>libbatchcluster-mkl-dispatch.so</c> (scripts/native/mkl-cpu-dispatch-shim.c) with
/// <c>RTLD_GLOBAL</c> before libtorch is loaded: libtorch then binds MKL's CPU check to it.
/// It must happen before the first TorchSharp call, so it runs when this assembly is loaded (a
/// module initializer), in every process that trains, probes or tests. Different kernels round
/// differently: runs stay bitwise reproducible with the same kernels, and <see cref="Kernels"/>
/// goes into every RunStarted event so a log says which path produced it (docs/decisions.md).
/// Set BATCHCLUSTER_MKL_DISPATCH=off to keep MKL's own choice (e.g. to compare).
/// </summary>
public static class MklDispatch
{
    public const string LibraryName = "libbatchcluster-mkl-dispatch.so";

    /// <summary>"mkl-avx512-forced" when the shim is in place, otherwise why not.</summary>
    public static string Kernels { get; private set; } = "mkl-default (not initialised)";

    // A library module initializer on purpose: the load must precede libtorch's, whoever calls TorchSharp first.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void LoadBeforeTorch()
    {
        if (!OperatingSystem.IsLinux())
        {
            Kernels = "mkl-default (not Linux)";
            return;
        }
        if (string.Equals(Environment.GetEnvironmentVariable("BATCHCLUSTER_MKL_DISPATCH"), "off", StringComparison.OrdinalIgnoreCase))
        {
            Kernels = "mkl-default (BATCHCLUSTER_MKL_DISPATCH=off)";
            return;
        }
        string? path = new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native") }
            .Select(d => Path.Combine(d, LibraryName)).FirstOrDefault(File.Exists);
        if (path is null)
        {
            Kernels = "mkl-default (shim not built: gcc missing at build time)";
            return;
        }
        const int RtldNow = 2, RtldGlobal = 0x100;
        Kernels = dlopen(path, RtldNow | RtldGlobal) != IntPtr.Zero ? "mkl-cpu-dispatch-shim" : "mkl-default (shim failed to load)";
    }

    [DllImport("libc.so.6", CharSet = CharSet.Ansi)]
    private static extern IntPtr dlopen(string path, int flags);
}
