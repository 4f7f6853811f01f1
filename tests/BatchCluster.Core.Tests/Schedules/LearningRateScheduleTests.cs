using BatchCluster.Core.Schedules;

namespace BatchCluster.Core.Tests.Schedules;

public class LearningRateScheduleTests
{
    [Theory]
    [InlineData(LrScaling.None, 1024, 0.1)]
    [InlineData(LrScaling.Linear, 1024, 0.4)]
    [InlineData(LrScaling.Linear, 64, 0.025)]
    [InlineData(LrScaling.Sqrt, 1024, 0.2)]
    [InlineData(LrScaling.Sqrt, 64, 0.05)]
    public void Peak_rate_follows_the_scaling_rule(LrScaling scaling, int batch, double expected)
    {
        var schedule = new LearningRateSchedule(0.1, scaling, 256, batch, WarmupSteps: 0);
        Assert.Equal(expected, schedule.PeakLearningRate, 12);
        Assert.Equal(expected, schedule.At(0), 12);
        Assert.Equal(expected, schedule.At(10_000), 12);
    }

    [Fact]
    public void Warmup_rises_linearly_to_the_peak_then_stays()
    {
        var schedule = new LearningRateSchedule(0.1, LrScaling.Linear, 256, 1024, WarmupSteps: 4);
        Assert.Equal(new[] { 0.1, 0.2, 0.3, 0.4, 0.4, 0.4 }, Enumerable.Range(0, 6).Select(s => Math.Round(schedule.At(s), 12)));
    }
}
