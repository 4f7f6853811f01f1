using System.Diagnostics;

namespace BatchCluster.Core.Diagnostics;

/// <summary>
/// This process's peak resident memory (Linux: VmHWM, the RSS high-water mark; elsewhere the peak
/// working set). Reading it costs a /proc read, so the value is cached and refreshed at most every
/// <see cref="RefreshInterval"/>: steps take about a millisecond, and a high-water mark read a
/// quarter second late is still the high-water mark of the run so far.
/// </summary>
public static class PeakMemory
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMilliseconds(250);

    private static long _cachedBytes;
    private static long _readAtTicks = long.MinValue;

    /// <summary>Peak resident bytes of this process so far (cached, see the class remarks).</summary>
    public static long Bytes
    {
        get
        {
            long now = Stopwatch.GetTimestamp();
            long readAt = Interlocked.Read(ref _readAtTicks);
            if (readAt == long.MinValue || Stopwatch.GetElapsedTime(readAt, now) >= RefreshInterval)
            {
                Interlocked.Exchange(ref _cachedBytes, ReadNow());
                Interlocked.Exchange(ref _readAtTicks, now);
            }
            return Interlocked.Read(ref _cachedBytes);
        }
    }

    public static double Megabytes => Bytes / (1024.0 * 1024.0);

    /// <summary>
    /// Starts a new high-water mark from the current resident size, so that a run's peak is its own
    /// and not an earlier run's in the same process (a sweep). Linux only (writing 5 to
    /// /proc/self/clear_refs resets VmHWM); elsewhere the peak stays process-wide. Returns whether it did.
    /// </summary>
    public static bool Reset()
    {
        bool done = false;
        try
        {
            if (OperatingSystem.IsLinux())
            {
                File.WriteAllText("/proc/self/clear_refs", "5");
                done = true;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not permitted here (e.g. a restricted container): the peak stays process-wide.
        }
        Interlocked.Exchange(ref _readAtTicks, long.MinValue);
        return done;
    }

    /// <summary>Reads the high-water mark now, without the cache.</summary>
    public static long ReadNow()
    {
        const string statusFile = "/proc/self/status";
        if (OperatingSystem.IsLinux() && File.Exists(statusFile))
        {
            foreach (string line in File.ReadLines(statusFile))
            {
                // "VmHWM:    123456 kB"
                if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 2 && long.TryParse(parts[1], out long kb)) return kb * 1024;
            }
        }
        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64;
    }
}
