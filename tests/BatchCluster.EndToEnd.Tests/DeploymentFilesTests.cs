using System.Diagnostics;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// The compose file as Compose itself reads it (Debian's docker-compose 'config'), where no engine is needed;
/// Containers/ComposeTests runs it for real.
/// </summary>
public class DeploymentFilesTests
{
    private static string RepositoryRoot() => CliProcess.RepositoryRoot();

    [Fact]
    public void Docker_compose_accepts_the_compose_file_whose_nodes_run_with_tls()
    {
        string root = RepositoryRoot();
        var start = new ProcessStartInfo("docker-compose") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root };
        foreach (var a in new[] { "-f", Path.Combine(root, "docker-compose.yml"), "config" }) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, errors);
        foreach (string service in new[] { "train:", "certs:", "coordinator:", "worker:" }) Assert.Contains(service, output);
        Assert.Contains("BATCHCLUSTER_SEEDS: coordinator:4053", output);
        // Nodes that listen beyond loopback run with TLS (they refuse to start without it): both node services name their certificate.
        Assert.Contains("BATCHCLUSTER_TLS_CERT: /certs/coordinator.pfx", output);
        Assert.Contains("BATCHCLUSTER_TLS_CERT: /certs/worker.pfx", output);
        Assert.Contains("condition: service_completed_successfully", output);
        Assert.Contains("/usr/share/datasets/fashion-mnist:/usr/share/datasets/fashion-mnist:ro", output);
    }

    [Fact]
    public void Both_image_recipes_run_the_self_contained_tool()
    {
        string root = RepositoryRoot();
        string dockerfile = File.ReadAllText(Path.Combine(root, "Dockerfile"));
        Assert.Contains("dotnet publish src/BatchCluster.Cli/BatchCluster.Cli.csproj -c Release -r linux-x64 --self-contained -o /app", dockerfile);
        Assert.Contains("ARG BASE_IMAGE=", dockerfile);
        string published = File.ReadAllText(Path.Combine(root, "scripts", "docker", "Dockerfile.published"));
        foreach (string text in new[] { dockerfile, published }) Assert.Contains("ENTRYPOINT [\"/app/batchcluster\"]", text);
    }
}
