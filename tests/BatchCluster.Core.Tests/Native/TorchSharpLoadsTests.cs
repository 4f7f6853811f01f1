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
}
