using System.Security.Authentication;
using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Security;
using BatchCluster.Core.Training;
using Xunit.Abstractions;

namespace BatchCluster.Cluster.Tests.Security;

/// <summary>
/// A closed cluster: with TLS, only a node whose certificate was issued by the cluster's authority
/// joins (Akka remoting) and connects (the data plane); one with another authority's certificate,
/// or none, is refused. Real nodes on loopback TCP.
/// </summary>
public sealed class TlsClusterTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan RefusedJoin = TimeSpan.FromSeconds(4);
    private readonly TestCertificates _ours = new();
    private readonly TestCertificates _theirs = new("Another CA");

    public void Dispose()
    {
        _ours.Dispose();
        _theirs.Dispose();
    }

    private static async Task<(Akka.Actor.ActorSystem System, int Port)> FormCluster(ClusterTls? tls)
    {
        var seed = ClusterBootstrap.Start(ClusterBootstrap.CoordinatorRole, "127.0.0.1", 0, tls);
        Assert.True(await ClusterBootstrap.JoinAsync(seed, [], TimeSpan.FromSeconds(20)));
        return (seed, Akka.Cluster.Cluster.Get(seed).SelfAddress.Port!.Value);
    }

    private static async Task<bool> Joins(int seedPort, ClusterTls? tls, TimeSpan timeout)
    {
        var node = ClusterBootstrap.Start(ClusterBootstrap.WorkerRole, "127.0.0.1", 0, tls);
        try
        {
            return await ClusterBootstrap.JoinAsync(node, [new NodeAddress("127.0.0.1", seedPort)], timeout);
        }
        finally
        {
            await node.Terminate();
        }
    }

    [Fact]
    public async Task Only_nodes_of_the_clusters_authority_join()
    {
        using var coordinatorTls = _ours.Node("coordinator");
        var (seed, port) = await FormCluster(coordinatorTls);
        try
        {
            Assert.Equal("akka.ssl.tcp", Akka.Cluster.Cluster.Get(seed).SelfAddress.Protocol);
            using var worker = _ours.Node("worker-1");
            Assert.True(await Joins(port, worker, TimeSpan.FromSeconds(20)), "a node of the cluster's authority could not join");
            using var stranger = _theirs.Node("worker-x");
            Assert.False(await Joins(port, stranger, RefusedJoin), "a node of another authority joined");
            Assert.False(await Joins(port, tls: null, RefusedJoin), "a node without TLS joined");
            Assert.False(await HostileJoins(port), "a node of another authority that trusts anyone joined");
            Assert.Single(Akka.Cluster.Cluster.Get(seed).State.Members, m => m.Status == Akka.Cluster.MemberStatus.Up);
        }
        finally
        {
            await seed.Terminate();
        }
    }

    /// <summary>A peer that shows another authority's certificate and accepts any: only the seed's own check can refuse it.</summary>
    private async Task<bool> HostileJoins(int seedPort)
    {
        var pfx = _theirs.Issue("hostile");
        using var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(pfx, TestCertificates.Password);
        var setup = Akka.Actor.BootstrapSetup.Create()
            .WithConfig(ClusterTls.AkkaConfig.WithFallback(ClusterBootstrap.ConfigFor(ClusterBootstrap.WorkerRole, "127.0.0.1", 0)))
            .And(new Akka.Remote.Transport.DotNetty.DotNettySslSetup(certificate, suppressValidation: true, requireMutualAuthentication: true));
        var node = Akka.Actor.ActorSystem.Create(ClusterBootstrap.SystemName, setup);
        try
        {
            return await ClusterBootstrap.JoinAsync(node, [new NodeAddress("127.0.0.1", seedPort)], RefusedJoin);
        }
        finally
        {
            await node.Terminate();
        }
    }

    [Fact]
    public void Loading_refuses_a_wrong_password_and_a_certificate_of_another_authority()
    {
        string pfx = _ours.Issue("node");
        var wrong = Assert.Throws<TlsConfigurationException>(() => ClusterTls.Load(pfx, "not-the-password", _ours.AuthorityPath));
        Assert.Contains("BATCHCLUSTER_TLS_PASSWORD", wrong.Message);
        var foreign = Assert.Throws<TlsConfigurationException>(() => ClusterTls.Load(pfx, TestCertificates.Password, _theirs.AuthorityPath));
        Assert.Contains("is not trusted by --tls-ca", foreign.Message);
        var missing = Assert.Throws<TlsConfigurationException>(() => ClusterTls.Load(pfx + ".nope", TestCertificates.Password, _ours.AuthorityPath));
        Assert.Contains("no file at", missing.Message);
        output.WriteLine(string.Join("\n", wrong.Message, foreign.Message, missing.Message));
    }

    [Fact]
    public async Task The_data_plane_carries_tensors_only_between_nodes_of_the_authority()
    {
        using var coordinatorTls = _ours.Node("coordinator");
        var run = new DataPlaneRun(FrameHeader.TagOf("tls-run"), 1000, TransferPrecision.Fp32);
        var gradients = new TaskCompletionSource<GradientArrived>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var server = new DataPlaneServer("127.0.0.1", 0, run, a => gradients.TrySetResult(a), _ => { }, coordinatorTls);
        var values = Enumerable.Range(0, 1000).Select(i => i * 0.25f).ToArray();

        using var workerTls = _ours.Node("worker-1");
        var parameters = new TaskCompletionSource<ParametersArrived>(TaskCreationOptions.RunContinuationsAsynchronously);
        var offer = new DataPlaneOffer("127.0.0.1", server.Port, server.Expect(1), TransferPrecision.Fp32);
        using (var client = DataPlaneClient.Connect(offer, run, p => parameters.TrySetResult(p), _ => { }, workerTls))
        {
            await WaitUntil(() => server.IsConnected(1));
            Assert.Equal(ParameterSend.Queued, server.SendParameters(1, 7, values));
            var arrived = await parameters.Task.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(values, arrived.Values[..1000]);
            client.SendGradient(7, 7, 0, values);
            Assert.Equal(values, (await gradients.Task.WaitAsync(TimeSpan.FromSeconds(10))).Values[..1000]);
        }

        using var strangerTls = _theirs.Node("worker-x");
        var strangerOffer = new DataPlaneOffer("127.0.0.1", server.Port, server.Expect(2), TransferPrecision.Fp32);
        var refused = Assert.ThrowsAny<Exception>(() => DataPlaneClient.Connect(strangerOffer, run, _ => { }, _ => { }, strangerTls));
        Assert.True(refused is IOException or AuthenticationException, refused.ToString());
        Assert.ThrowsAny<IOException>(() => DataPlaneClient.Connect(strangerOffer, run, _ => { }, _ => { }, tls: null));

        // A client that shows another authority's certificate and accepts any server: the server's check must refuse it.
        using (var socket = new System.Net.Sockets.TcpClient("127.0.0.1", server.Port))
        using (var hostile = new System.Net.Security.SslStream(socket.GetStream(), false))
        {
            using var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(
                _theirs.Issue("hostile"), TestCertificates.Password);
            var outcome = Record.Exception(() =>
            {
                hostile.AuthenticateAsClient(new System.Net.Security.SslClientAuthenticationOptions
                {
                    TargetHost = "127.0.0.1", ClientCertificates = [certificate], RemoteCertificateValidationCallback = (_, _, _, _) => true,
                });
                hostile.Write(FrameHeader.Hello(TransferPrecision.Fp32, server.Expect(2)));
                hostile.ReadTimeout = 10_000;
                Assert.Equal(0, hostile.Read(new byte[FrameHeader.Size])); // closed: no HelloAccepted
            });
            Assert.True(outcome is null or IOException or AuthenticationException, outcome?.ToString());
        }
        Assert.False(server.IsConnected(2));
    }

    /// <summary>Polls a condition another thread makes true (the server publishes a connection after its handshake).</summary>
    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }
}
