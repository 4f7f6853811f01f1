using System.Diagnostics;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>Runs a program (a script of scripts/, or any other) to its end and keeps what it printed.</summary>
public static class ScriptProcess
{
    public static string PathOf(string script) => Path.Combine(CliProcess.RepositoryRoot(), "scripts", script);

    /// <summary>Longer than any script the tests run takes (the GPU check's dry run: ~90 s); a hung one is killed, and the test fails.</summary>
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(6);

    /// <param name="workingDirectory">Where it runs (null: the test's own).</param>
    public static CliProcess.Outcome Run(string? workingDirectory, string program, params string[] args) =>
        Run(program, args, Limit, null, workingDirectory);

    /// <param name="environment">Variables set for it on top of this process's.</param>
    public static CliProcess.Outcome Run(string program, IEnumerable<string> args, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null,
        string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        foreach (string a in args) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', start.ArgumentList)} ran past {limit.TotalSeconds:F0} s and was killed");
        }
        process.WaitForExit(); // the output streams to their end
        return new CliProcess.Outcome(process.ExitCode, stdout.Result, stderr.Result);
    }
}
