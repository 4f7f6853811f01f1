using TorchSharp;

namespace BatchCluster.Core.Native;

/// <summary>Loads TorchSharp's native library once and sets the intra-op thread count.</summary>
public static class TorchRuntime
{
    /// <summary>
    /// Sets libtorch's intra-op threads (process-wide). Fails with a clear message when the native
    /// library cannot load, which on Debian 12 means the build-time patch did not run (docs/decisions.md, "TorchSharp on Debian 12").
    /// </summary>
    public static void Initialise(int threads)
    {
        if (threads <= 0) throw new ArgumentOutOfRangeException(nameof(threads), $"thread count {threads} must be positive");
        try
        {
            torch.set_num_threads(threads);
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException)
        {
            throw new InvalidOperationException(
                "TorchSharp's native library failed to load. On Debian 12 the build patches libLibTorchSharp.so for the older libstdc++ " +
                "(scripts/native/patch-torchsharp-native.sh, needs g++ and patchelf); rebuild with 'scripts/run.sh' or 'scripts/test.sh'. Cause: " +
                e.GetBaseException().Message, e);
        }
    }
}
