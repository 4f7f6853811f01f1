using BatchCluster.Core.Data;

namespace BatchCluster.Core.Tests.Data;

/// <summary>The real data set as Debian installs it (scripts/test.sh installs the package).</summary>
public class RealFashionMnistTests
{
    [Fact]
    public void Debian_package_loads_with_the_documented_split()
    {
        var splits = FashionMnist.Load(FashionMnist.DefaultDirectory);
        Assert.Equal(55_000, splits.Train.Count);
        Assert.Equal(5_000, splits.Validation.Count);
        Assert.Equal(10_000, splits.Test.Count);
        Assert.Equal((28, 28), (splits.Train.Height, splits.Train.Width));
        // Fashion-MNIST is balanced: 1,000 test images per class.
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(1000, splits.Test.Labels.Count(l => l == c)));
    }

    [Fact]
    public void Synthetic_data_is_deterministic_and_only_made_on_request()
    {
        var a = SyntheticImages.Create(seed: 7, trainCount: 50, validationCount: 10, testCount: 10);
        var b = SyntheticImages.Create(seed: 7, trainCount: 50, validationCount: 10, testCount: 10);
        var c = SyntheticImages.Create(seed: 8, trainCount: 50, validationCount: 10, testCount: 10);
        Assert.Equal(a.Train.Pixels, b.Train.Pixels);
        Assert.Equal(a.Train.Labels, b.Train.Labels);
        Assert.NotEqual(a.Train.Pixels, c.Train.Pixels);
    }
}
