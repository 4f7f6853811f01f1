using BatchCluster.Core.Probing;

namespace BatchCluster.Core.Tests.Probing;

public sealed class PowerOfTwoEffectTests
{
    private static ProbeResult Timed(int batch, double medianMs) => new(batch, 10, medianMs, medianMs, medianMs, batch / medianMs * 1000, 0);

    [Fact]
    public void A_power_of_two_is_compared_with_the_mean_of_its_two_neighbours()
    {
        var effects = PowerOfTwoEffect.From([Timed(31, 1.0), Timed(32, 0.9), Timed(33, 1.2), Timed(100, 3), Timed(127, 2), Timed(128, 2.2)]);
        var only = Assert.Single(effects); // 128 lacks 129; 100 is no power of two
        Assert.Equal(32, only.BatchSize);
        Assert.Equal(0.9 / 1.1 - 1, only.RelativeStepTime, 12);
    }
}
