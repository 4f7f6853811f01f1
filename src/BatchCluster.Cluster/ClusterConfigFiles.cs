using Akka.Configuration;

namespace BatchCluster.Cluster;

/// <summary>The HOCON files of cluster-config/, embedded into this assembly at build time.</summary>
public static class ClusterConfigFiles
{
    public static Config Load(string fileName)
    {
        string resource = $"BatchCluster.Cluster.{fileName}";
        using var stream = typeof(ClusterConfigFiles).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"cluster-config/{fileName} is not embedded in the build");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }
}
