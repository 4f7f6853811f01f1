using BatchCluster.Core.Diagnostics;

namespace BatchCluster.Core.Tests.Diagnostics;

public sealed class AllocationMeterTests
{
    /// <summary>A process whose allocation total the test moves by hand, counting how often it is read.</summary>
    private sealed class FakeProcess
    {
        public long Total;
        public int Reads;
        public long Read()
        {
            Reads++;
            return Total;
        }
    }

    [Fact]
    public void The_first_report_is_exact_then_each_window_reports_its_mean_and_reads_once()
    {
        var process = new FakeProcess { Total = 1_000 };
        var meter = new AllocationMeter(window: 4, process.Read);
        Assert.Equal(1, process.Reads); // the starting total

        process.Total += 700;
        Assert.Equal(700, meter.Report()); // the first report reads at once
        Assert.Equal(2, process.Reads);

        // A window of 4 reports allocating 100, 200, 300, 400: the first three repeat the last figure, the fourth reads the mean.
        long[] reported = new long[4];
        for (int i = 0; i < 4; i++)
        {
            process.Total += 100 * (i + 1);
            reported[i] = meter.Report();
        }
        Assert.Equal([700, 700, 700, 250], reported);
        Assert.Equal(3, process.Reads); // one exact read for the whole window
    }

    [Fact]
    public void Over_whole_windows_the_reports_add_up_to_what_was_allocated()
    {
        var process = new FakeProcess();
        var meter = new AllocationMeter(window: 16, process.Read);
        var random = new Random(5);
        long allocated = 0, reportedOverWindows = 0;
        meter.Report(); // the first report (nothing allocated yet) starts the windows
        for (int i = 0; i < 16 * 10; i++)
        {
            long bytes = 16 * random.Next(0, 4096); // multiples of 16: every mean divides exactly
            process.Total += bytes;
            allocated += bytes;
            if ((i + 1) % 16 == 0) reportedOverWindows += 16 * meter.Report();
            else meter.Report();
        }
        Assert.Equal(allocated, reportedOverWindows);
    }

    [Fact]
    public void A_window_of_one_reads_at_every_report()
    {
        var process = new FakeProcess();
        var meter = new AllocationMeter(window: 1, process.Read);
        process.Total = 30;
        Assert.Equal(30, meter.Report());
        process.Total = 31;
        Assert.Equal(1, meter.Report());
        Assert.Equal(3, process.Reads);
        Assert.Throws<ArgumentOutOfRangeException>(() => new AllocationMeter(window: 0, process.Read));
    }
}
