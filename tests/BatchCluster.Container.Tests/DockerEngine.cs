using System.Diagnostics;

namespace BatchCluster.Container.Tests;

/// <summary>
/// A Docker engine for the container tests, and the image they run. Where none answers and this process is root, it starts
/// Debian's <c>dockerd</c> itself (its default bridge in the benchmarking range 198.18.0.0/15, no iptables rules) and stops
/// that one when the tests are done; an engine that was already running is used and left running. The images are built once
/// per test run with <c>scripts/docker-image.sh --with-prometheus</c> (which reuses the debootstrap base image when present).
/// </summary>
public sealed class DockerEngine : IDisposable
{
    private readonly Process? _daemon;
    private readonly string? _daemonRoot;

    public string ImageBuildOutput { get; }

    public DockerEngine()
    {
        if (!Answers())
        {
            _daemonRoot = Directory.CreateTempSubdirectory("dockerd-").FullName;
            _daemon = Process.Start(new ProcessStartInfo("dockerd")
            {
                ArgumentList = { "--iptables=false", "--bip", "198.18.200.1/24", "--pidfile", Path.Combine(_daemonRoot, "dockerd.pid") },
                RedirectStandardOutput = true, RedirectStandardError = true,
            })!;
            _daemon.OutputDataReceived += (_, _) => { };
            _daemon.ErrorDataReceived += (_, _) => { };
            _daemon.BeginOutputReadLine();
            _daemon.BeginErrorReadLine();
            var clock = Stopwatch.StartNew();
            while (!Answers())
            {
                if (_daemon.HasExited) throw new InvalidOperationException($"dockerd exited with {_daemon.ExitCode} before answering");
                if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException("dockerd did not answer within 60 s");
                Thread.Sleep(200); // polling another process's readiness
            }
        }
        var build = Shell.Run(Path.Combine(CliProcess.RepositoryRoot(), "scripts", "docker-image.sh"), ["--with-prometheus"], TimeSpan.FromMinutes(10));
        if (build.ExitCode != 0) throw new InvalidOperationException($"scripts/docker-image.sh failed: {build.StdErr}");
        ImageBuildOutput = build.StdOut.Trim();
    }

    private static bool Answers() => Shell.Run("docker", ["info"], TimeSpan.FromSeconds(30)).ExitCode == 0;

    /// <summary>Whether the container tests can run here: the docker CLI, and an engine that answers or root to start one.</summary>
    public static bool Available =>
        Shell.Exists("docker") && Shell.Exists("docker-compose") && (Answers() || (RootOnly.IsRoot && Shell.Exists("dockerd") && Shell.Exists("debootstrap")));

    public void Dispose()
    {
        if (_daemon is null) return;
        NodeProcess.Signal(_daemon.Id, NodeProcess.SigTerm);
        if (!_daemon.WaitForExit(TimeSpan.FromSeconds(30))) _daemon.Kill();
        _daemon.Dispose();
        Directory.Delete(_daemonRoot!, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class DockerCollection : ICollectionFixture<DockerEngine>
{
    public const string Name = "docker";
}

/// <summary>A test that needs Docker: skipped where it cannot run, unless BATCHCLUSTER_REQUIRE_HOSTS=1 (CI), where it must.</summary>
public sealed class DockerFactAttribute : FactAttribute
{
    public DockerFactAttribute()
    {
        if (!DockerEngine.Available && !RootOnly.Required)
            Skip = "needs Docker (docker.io, docker-compose and debootstrap, and root to start dockerd; scripts/test.sh installs them)";
    }
}

/// <summary>Runs a program to its end (ScriptProcess, with a limit and variables) and finds programs on PATH.</summary>
public static class Shell
{
    public static CliProcess.Outcome Run(string program, IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null) =>
        ScriptProcess.Run(program, args, timeout, environment);

    public static bool Exists(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, program)));
}
