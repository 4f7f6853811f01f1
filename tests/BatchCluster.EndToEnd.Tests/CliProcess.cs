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

    /// <summary>The checkout the tests were built from (scripts, compose file, Dockerfile).</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "BatchCluster.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("BatchCluster.sln not found above the test binaries");
    }

    /// <summary>Largest |a − b| between two parameter files written by --export-params.</summary>
    public static double MaxAbsDifference(string exportA, string exportB)
    {
        int count = (int)(new FileInfo(exportA).Length / sizeof(float));
        var a = Core.Training.ParameterFile.Read(exportA, count);
        var b = Core.Training.ParameterFile.Read(exportB, count);
        return a.Zip(b, (x, y) => Math.Abs(x - (double)y)).Max();
    }

    /// <summary>
    /// How to start the CLI built beside the tests with <paramref name="args"/>, output redirected.
    /// Through <c>env --default-signal=INT</c>: a test runner started in the background (nohup …&amp;)
    /// passes SIGINT on ignored, and .NET leaves a signal ignored at start ignored, so the Ctrl-C
    /// tests would test nothing (env execs the CLI: the process id stays the CLI's).
    /// </summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo("env")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("--default-signal=INT");
        start.ArgumentList.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet");
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "batchcluster.dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        return start;
    }

    public static Outcome Run(TimeSpan timeout, params string[] args) => Run(timeout, new Dictionary<string, string>(), args);

    /// <param name="environment">Variables set for the process on top of this one's.</param>
    public static Outcome Run(TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = StartInfo(args);
        foreach (var (name, value) in environment) start.Environment[name] = value;
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
