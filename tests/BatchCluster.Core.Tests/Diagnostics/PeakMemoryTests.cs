using System.Runtime.InteropServices;
using BatchCluster.Core.Diagnostics;

namespace BatchCluster.Core.Tests.Diagnostics;

/// <summary>Runs alone (<see cref="ProcessWideCollection"/>): it reads the whole process's resident memory, which tests beside it grow by tens of MiB.</summary>
[Collection(ProcessWideCollection.Name)]
public sealed class PeakMemoryTests
{
    [Fact]
    // Linux only, like the project (VmHWM and clear_refs).
    public void The_peak_follows_a_large_allocation_and_a_reset_starts_from_the_current_size()
    {
        const int size = 256 << 20;
        // From the current size: tests before this one in the process (models, data sets) may have left a high-water mark above
        // what is resident now, and 256 MiB more would not pass it (CI, once the CNN replica tests ran first).
        Assert.True(PeakMemory.Reset(), "clear_refs was refused");
        long before = PeakMemory.ReadNow();
        // Native memory, touched page by page: resident for sure, and returned to the OS on free
        // (glibc serves allocations this large with mmap), unlike a managed array.
        IntPtr block = Marshal.AllocHGlobal(size);
        try
        {
            for (int offset = 0; offset < size; offset += 4096) Marshal.WriteByte(block, offset, 1);
            Assert.True(PeakMemory.ReadNow() >= before + size * 0.9, "the peak did not grow with 256 MiB touched");
        }
        finally
        {
            Marshal.FreeHGlobal(block);
        }
        long peakWithBlock = PeakMemory.ReadNow();
        Assert.True(PeakMemory.Reset(), "clear_refs was refused");
        Assert.True(PeakMemory.ReadNow() < peakWithBlock - size * 0.9, "the reset peak still holds the freed block");
    }
}
