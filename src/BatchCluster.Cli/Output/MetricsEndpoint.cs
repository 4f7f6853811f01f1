using BatchCluster.Cli.Options;
using BatchCluster.Core.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace BatchCluster.Cli.Output;

/// <summary>
/// The node's Prometheus scrape endpoint (<c>--metrics-port</c>): the OpenTelemetry SDK listens to
/// <see cref="TrainingMetrics"/>' Meter and serves <c>http://HOST:PORT/metrics</c> in Prometheus' text format
/// (docs/monitoring.md; why this exporter: docs/decisions.md). Disposing it stops the listener.
/// </summary>
public static class MetricsEndpoint
{
    public const string Path = "/metrics";

    /// <param name="host">An address of this machine, or 0.0.0.0 (or *) for every address.</param>
    /// <param name="role">What this process is (train, coordinator, worker): target_info's <c>batchcluster_role</c>.</param>
    public static IDisposable Start(string host, int port, string role)
    {
        // HttpListener matches the request's Host header against its prefix: "+" takes any host name on every address.
        bool wildcard = host is "0.0.0.0" or "*";
        try
        {
            return Sdk.CreateMeterProviderBuilder()
                .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("batchcluster", serviceVersion: TrainingMetrics.Version)
                    .AddAttributes([new("batchcluster.role", role)]))
                .AddMeter(TrainingMetrics.MeterName)
                .AddPrometheusHttpListener(o =>
                {
                    o.Host = wildcard ? "localhost" : host;
                    o.Port = port;
                    // The exporter parses its prefix as a URI, which a wildcard host is not: every address is set on the listener itself.
                    if (wildcard)
                        o.ConfigureHttpListener = (_, listener) =>
                        {
                            listener.Prefixes.Clear();
                            listener.Prefixes.Add($"http://+:{port}/");
                        };
                    o.ScrapeEndpointPath = Path;
                })
                .Build();
        }
        catch (Exception e) when (e is System.Net.HttpListenerException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            throw new UsageException($"--metrics-port {port} cannot listen on {host} ({(e.InnerException ?? e).Message}); choose a free port or another --metrics-host");
        }
    }
}
