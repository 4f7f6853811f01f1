namespace BatchCluster.Core.Diagnostics;

/// <summary>
/// Managed bytes this process allocates per report (a step, or a worker's share), for
/// <c>AllocatedBytesByNode</c>. The exact count, <c>GC.GetTotalAllocatedBytes(precise: true)</c>,
/// suspends every managed thread of the process to read their allocation contexts: measured on our
/// 2-core machine, ~40 µs a call, and with 4 local workers each calling it once a share and the
/// coordinator once a commit it cost 0.35 ms of CPU per step of 2.8 (docs/performance.md). So the
/// exact count is read on the first report and then once every <see cref="Window"/> reports, and each
/// report gives the mean per report of the last window read: still exact over every window, and a
/// steady state's per-step figure is its mean.
/// </summary>
public sealed class AllocationMeter
{
    public const int DefaultWindow = 16;

    private readonly Func<long> _readTotal;
    private long _totalAtLastRead;
    private int _reportsSinceRead;
    private long _perReport;
    private bool _readOnce;

    /// <param name="window">Reports per exact read (1: read at every report).</param>
    /// <param name="readTotal">The process's allocation total; tests give their own.</param>
    public AllocationMeter(int window = DefaultWindow, Func<long>? readTotal = null)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), $"window {window} must be at least 1");
        Window = window;
        _readTotal = readTotal ?? (() => GC.GetTotalAllocatedBytes(precise: true));
        _totalAtLastRead = _readTotal();
    }

    public int Window { get; }

    /// <summary>One report: the mean bytes per report over the last window read (the first report reads at once).</summary>
    public long Report()
    {
        _reportsSinceRead++;
        if (_readOnce && _reportsSinceRead < Window) return _perReport;
        long total = _readTotal();
        _perReport = (total - _totalAtLastRead) / _reportsSinceRead;
        _totalAtLastRead = total;
        _reportsSinceRead = 0;
        _readOnce = true;
        return _perReport;
    }
}
