using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Akka.Actor.Setup;
using Akka.Configuration;
using BatchCluster.Cluster.Security;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// Starts a node of the multi-node cluster from cluster-config/: the role's file, then
/// cluster.hocon (what all nodes share), then common.hocon; host, port and roles on top.
/// </summary>
public static class ClusterBootstrap
{
    public const string SystemName = "batchcluster";
    public const string CoordinatorRole = "coordinator";
    public const string WorkerRole = "worker";
    public const string SingletonManagerName = "coordinator";
    /// <summary>Where the coordinator singleton (its RunSupervisor) lives on the node that hosts it.</summary>
    public const string CoordinatorSingletonPath = "/user/" + SingletonManagerName + "/singleton";

    /// <param name="tls">When given, remoting runs over TLS with mutual authentication (<see cref="ClusterTls"/>).</param>
    public static Config ConfigFor(string role, string host, int port, ClusterTls? tls = null)
    {
        if (role is not (CoordinatorRole or WorkerRole))
            throw new ArgumentException($"role must be {CoordinatorRole} or {WorkerRole}, not '{role}'");
        if (!IsHostName(host))
            throw new ArgumentException($"'{host}' is not a host name or IP address (letters, digits, '.', '-', ':' only)");
        if (port is < 0 or > 65535) throw new ArgumentException($"port {port} is outside 0–65535");
        // The host is checked above: nothing in it can end the quoted HOCON string.
        var endpoint = ConfigurationFactory.ParseString(
            $"akka.remote.dot-netty.tcp.hostname = \"{host}\"\nakka.remote.dot-netty.tcp.port = {port}");
        var config = endpoint
            .WithFallback(ClusterConfigFiles.Load($"{role}.hocon"))
            .WithFallback(ClusterConfigFiles.Load("cluster.hocon"))
            .WithFallback(ClusterConfigFiles.Load("common.hocon"));
        return tls is null ? config : ClusterTls.AkkaConfig.WithFallback(config);
    }

    /// <summary>A DNS name or an IPv4/IPv6 address: letters, digits, dots, hyphens and colons.</summary>
    public static bool IsHostName(string host) =>
        host.Length is > 0 and <= 253 && host.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or ':');

    /// <summary>Whether only this machine can reach <paramref name="host"/> (localhost, 127.0.0.0/8, ::1).</summary>
    public static bool IsLoopback(string host) =>
        host == "localhost" || (System.Net.IPAddress.TryParse(host, out var address) && System.Net.IPAddress.IsLoopback(address));

    /// <summary>Starts the node's actor system, which binds <paramref name="host"/>:<paramref name="port"/> before it returns.</summary>
    /// <exception cref="NodeBindException">The address cannot be bound (in use, or not this machine's).</exception>
    /// <param name="overrides">Settings that win over the files' (tests: a bad member's own frame limit).</param>
    public static ActorSystem Start(string role, string host, int port, ClusterTls? tls = null, Config? overrides = null)
    {
        var config = ConfigFor(role, host, port, tls);
        if (overrides is not null) config = overrides.WithFallback(config);
        try
        {
            if (tls is null) return ActorSystem.Create(SystemName, config);
            return ActorSystem.Create(SystemName, BootstrapSetup.Create().WithConfig(config).And(tls.AkkaSetup()));
        }
        catch (Exception e) when (SocketErrorIn(e) is { } socket)
        {
            throw new NodeBindException(host, port, socket.Message, e);
        }
    }

    /// <summary>The socket error under Akka's nested AggregateExceptions, if any.</summary>
    private static System.Net.Sockets.SocketException? SocketErrorIn(Exception e) => e switch
    {
        System.Net.Sockets.SocketException socket => socket,
        AggregateException aggregate => aggregate.InnerExceptions.Select(SocketErrorIn).FirstOrDefault(s => s is not null),
        { InnerException: { } inner } => SocketErrorIn(inner),
        _ => null,
    };

    /// <summary>
    /// Joins the seeds (or forms a new cluster when there are none) and waits until this node is Up.
    /// </summary>
    /// <returns>false when no seed let this node in within <paramref name="timeout"/>.</returns>
    public static async Task<bool> JoinAsync(ActorSystem system, IReadOnlyList<NodeAddress> seeds, TimeSpan timeout, CancellationToken cancellation = default)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        if (seeds.Count == 0) cluster.Join(cluster.SelfAddress);
        // A seed speaks this node's protocol: akka.tcp, or akka.ssl.tcp with TLS.
        else cluster.JoinSeedNodes(seeds.Select(s => new Address(cluster.SelfAddress.Protocol, SystemName, s.Host, s.Port)));
        try
        {
            await up.Task.WaitAsync(timeout, cancellation).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>
    /// Hosts the run (its <see cref="Actors.RunSupervisor"/>) as a cluster singleton on the coordinator role, beside the
    /// rule that downs a worker unreachable for long (<see cref="UnreachableWorkerDowning"/>; it acts where the singleton runs).
    /// </summary>
    public static IActorRef StartCoordinatorSingleton(ActorSystem system, Props coordinator)
    {
        system.ActorOf(UnreachableWorkerDowning.Props(), UnreachableWorkerDowning.Name);
        return system.ActorOf(ClusterSingletonManager.Props(coordinator, PoisonPill.Instance,
            ClusterSingletonManagerSettings.Create(system).WithRole(CoordinatorRole)), SingletonManagerName);
    }

    /// <summary>The way every worker reaches the coordinator, wherever the singleton currently lives.</summary>
    public static IActorRef CoordinatorProxy(ActorSystem system) =>
        system.ActorOf(ClusterSingletonProxy.Props($"/user/{SingletonManagerName}",
            ClusterSingletonProxySettings.Create(system).WithRole(CoordinatorRole)), "coordinator-proxy");

    /// <summary>Leaves the cluster gracefully and stops the actor system.</summary>
    public static Task LeaveAsync(ActorSystem system) =>
        CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClusterLeavingReason.Instance);
}

/// <summary>A node cannot listen where it was told to; the message names the address and what to do.</summary>
public sealed class NodeBindException(string host, int port, string reason, Exception inner)
    : Exception($"cannot listen on {host}:{port} ({reason}); another node may be using the port: choose another --port, or a --host of this machine", inner);
