using System.Diagnostics;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// Docker is not available on our machines, so the compose file is validated the way Compose
/// itself reads it: Debian's docker-compose 'config' (installed by scripts/test.sh) must accept it.
/// </summary>
public class DeploymentFilesTests
{
    private static string RepositoryRoot() => CliProcess.RepositoryRoot();

    [Fact]
    public void Docker_compose_accepts_the_compose_file_with_its_three_services()
    {
        string root = RepositoryRoot();
        var start = new ProcessStartInfo("docker-compose") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root };
        foreach (var a in new[] { "-f", Path.Combine(root, "docker-compose.yml"), "config" }) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, errors);
        foreach (string service in new[] { "train:", "coordinator:", "worker:" }) Assert.Contains(service, output);
        Assert.Contains("BATCHCLUSTER_SEEDS: coordinator:4053", output);
        Assert.Contains("/usr/share/datasets/fashion-mnist:/usr/share/datasets/fashion-mnist:ro", output);
    }

    [Fact]
    public void The_image_runs_the_tool_built_by_the_dockerfile()
    {
        string dockerfile = File.ReadAllText(Path.Combine(RepositoryRoot(), "Dockerfile"));
        Assert.Contains("dotnet build src/BatchCluster.Cli/BatchCluster.Cli.csproj -c Release -o /app", dockerfile);
        Assert.Contains("ENTRYPOINT [\"dotnet\", \"/app/batchcluster.dll\"]", dockerfile);
    }
}
