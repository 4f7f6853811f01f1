using System.Runtime.InteropServices;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// What the tests that need root (simulated hosts, a mounted tmpfs) ask: whether this process is root, and whether
/// skipping them is forbidden (BATCHCLUSTER_REQUIRE_HOSTS=1: CI, which runs as root, sets it so they fail loudly instead).
/// </summary>
internal static class RootOnly
{
    public static bool IsRoot => geteuid() == 0;

    public static bool Required => Environment.GetEnvironmentVariable("BATCHCLUSTER_REQUIRE_HOSTS") == "1";

    [DllImport("libc")]
    private static extern uint geteuid();
}
