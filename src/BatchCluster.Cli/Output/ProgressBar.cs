namespace BatchCluster.Cli.Output;

/// <summary>The bar both progress displays draw: "[#####.....]", 30 cells, filled by done/total.</summary>
public static class ProgressBar
{
    public const int Width = 30;

    public static string Render(long done, long total)
    {
        int filled = (int)Math.Clamp(Width * done / Math.Max(1, total), 0, Width);
        return $"[{new string('#', filled)}{new string('.', Width - filled)}]";
    }
}
