using TorchSharp;

namespace BatchCluster.Core.Tests.Native;

/// <summary>Proves the build-time native patch (docs/decisions.md): libtorch loads and autograd runs here.</summary>
public class TorchSharpLoadsTests
{
    [Fact]
    public void Creates_a_tensor_and_runs_a_backward_pass()
    {
        using var x = torch.tensor(new float[] { 1f, 2f, 3f }, requires_grad: true);
        using var y = (x * x).sum();
        y.backward();
        using var grad = x.grad!;
        Assert.Equal(new[] { 2f, 4f, 6f }, grad.data<float>().ToArray());
    }

    /// <summary>Directory.Build.targets leaves other systems' native libraries out of a Linux build (libtorch for Windows and
    /// macOS is ~530 MB of every output folder, and CI once ran out of disk with them); libtorch for Linux must still be there. The suite runs on Linux (README).</summary>
    [Fact]
    public void A_linux_build_carries_only_linux_native_libraries()
    {
        var runtimes = Path.Combine(AppContext.BaseDirectory, "runtimes");
        Assert.True(File.Exists(Path.Combine(runtimes, "linux-x64", "native", "libtorch_cpu.so")), "libtorch for Linux is missing");
        var others = Directory.GetDirectories(runtimes).Select(Path.GetFileName)
            .Where(name => name!.StartsWith("win", StringComparison.Ordinal) || name.StartsWith("osx", StringComparison.Ordinal)).ToList();
        Assert.True(others.Count == 0, $"other systems' libraries in {runtimes}: {string.Join(", ", others)} "
                                       + "(a build before Directory.Build.targets left them out leaves them there: delete bin/ and build again)");
    }
}
