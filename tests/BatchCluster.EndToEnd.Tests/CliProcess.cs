using System.Diagnostics;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>Runs the real CLI (batchcluster.dll, built beside the tests) as a child process.</summary>
public static class CliProcess
{
    public sealed record Outcome(int ExitCode, string StdOut, string StdErr)
    {
        public string[] StdOutLines => StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        public string LastLine => StdOutLines.Length == 0 ? "" : StdOutLines[^1];
    }

    public static Outcome Run(params string[] args) => Run(TimeSpan.FromMinutes(3), args);

    public static Outcome Run(TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "batchcluster.dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"batchcluster {string.Join(' ', args)} did not finish within {timeout}");
        }
        return new Outcome(process.ExitCode, stdout.Result, stderr.Result);
    }
}
