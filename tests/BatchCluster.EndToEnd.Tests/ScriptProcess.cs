using System.Diagnostics;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>Runs a program (a script of scripts/, or any other) to its end and keeps what it printed.</summary>
public static class ScriptProcess
{
    public static string PathOf(string script) => Path.Combine(CliProcess.RepositoryRoot(), "scripts", script);

    /// <param name="workingDirectory">Where it runs (null: the test's own).</param>
    public static CliProcess.Outcome Run(string? workingDirectory, string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new CliProcess.Outcome(process.ExitCode, stdout.Result, stderr.Result);
    }
}
