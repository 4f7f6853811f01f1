using System.CommandLine;
using BatchCluster.Cli.Output;

namespace BatchCluster.Cli.Options;

/// <summary>
/// <c>--metrics-port</c> and <c>--metrics-host</c>, taken by <c>train</c> and by <c>node</c> in either role:
/// where this process serves its live metrics for Prometheus (docs/monitoring.md).
/// </summary>
public sealed class MetricsOptions
{
    public Option<int?> Port { get; } = Opt.Int("metrics-port", "serve live metrics for Prometheus at http://HOST:P/metrics (docs/monitoring.md) [default: off]", 1, 65535, "P");
    public Option<string?> Host { get; } = Opt.Text("metrics-host", "address the metrics endpoint binds; 0.0.0.0 = every address [default: 127.0.0.1]", "H");

    public Option[] All => [Port, Host];

    /// <summary>Starts the endpoint when --metrics-port is given (null otherwise); a bind beyond loopback warns on stderr.</summary>
    public IDisposable? Start(ParseResult r, string role)
    {
        string host = r.GetValue(Host) ?? "127.0.0.1";
        if (!Cluster.Nodes.ClusterBootstrap.IsHostName(host) && host != "*")
            throw new UsageException($"--metrics-host '{host}' is not a host name or IP address (e.g. 127.0.0.1 or 0.0.0.0)");
        if (r.GetValue(Port) is not int port)
        {
            if (r.GetResult(Host) is { Implicit: false }) throw new UsageException("--metrics-host needs --metrics-port P (the port to serve the metrics on)");
            return null;
        }
        if (!Cluster.Nodes.ClusterBootstrap.IsLoopback(host))
            Console.Error.WriteLine($"batchcluster: warning: --metrics-host {host}: the metrics endpoint answers anyone who reaches port {port} "
                                    + "(training loss, accuracy, speeds and sizes; it changes nothing): keep the port inside your monitoring network");
        return MetricsEndpoint.Start(host, port, role);
    }
}
