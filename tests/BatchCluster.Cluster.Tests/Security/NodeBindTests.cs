using BatchCluster.Cluster.Nodes;

namespace BatchCluster.Cluster.Tests.Security;

/// <summary>The audit started a second coordinator on a port already in use: both listened, both "up".</summary>
public sealed class NodeBindTests
{
    [Fact]
    public async Task A_second_node_on_a_taken_port_fails_with_a_clear_message()
    {
        var first = ClusterBootstrap.Start(ClusterBootstrap.CoordinatorRole, "127.0.0.1", 0);
        try
        {
            int port = ((Akka.Actor.ExtendedActorSystem)first).Provider.DefaultAddress.Port!.Value;
            var e = Assert.Throws<NodeBindException>(() => ClusterBootstrap.Start(ClusterBootstrap.CoordinatorRole, "127.0.0.1", port));
            Assert.Contains($"cannot listen on 127.0.0.1:{port}", e.Message);
        }
        finally
        {
            await first.Terminate();
        }
    }

    [Theory]
    [InlineData("127.0.0.1\" x")]
    [InlineData("host\nakka.loglevel = DEBUG")]
    [InlineData("")]
    public void A_host_that_is_no_host_name_never_reaches_the_configuration(string host)
    {
        var e = Assert.Throws<ArgumentException>(() => ClusterBootstrap.ConfigFor(ClusterBootstrap.WorkerRole, host, 0));
        Assert.Contains("is not a host name or IP address", e.Message);
    }
}
