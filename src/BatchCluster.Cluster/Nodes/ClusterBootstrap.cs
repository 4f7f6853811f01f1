using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;

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

    public static Config ConfigFor(string role, string host, int port)
    {
        if (role is not (CoordinatorRole or WorkerRole))
            throw new ArgumentException($"role must be {CoordinatorRole} or {WorkerRole}, not '{role}'");
        var endpoint = ConfigurationFactory.ParseString(
            $"akka.remote.dot-netty.tcp.hostname = \"{host}\"\nakka.remote.dot-netty.tcp.port = {port}");
        return endpoint
            .WithFallback(ClusterConfigFiles.Load($"{role}.hocon"))
            .WithFallback(ClusterConfigFiles.Load("cluster.hocon"))
            .WithFallback(ClusterConfigFiles.Load("common.hocon"));
    }

    public static ActorSystem Start(string role, string host, int port) => ActorSystem.Create(SystemName, ConfigFor(role, host, port));

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
        else cluster.JoinSeedNodes(seeds.Select(s => Address.Parse(s.AkkaAddress)));
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

    /// <summary>Hosts the run (its <see cref="Actors.RunSupervisor"/>) as a cluster singleton on the coordinator role.</summary>
    public static IActorRef StartCoordinatorSingleton(ActorSystem system, Props coordinator) =>
        system.ActorOf(ClusterSingletonManager.Props(coordinator, PoisonPill.Instance,
            ClusterSingletonManagerSettings.Create(system).WithRole(CoordinatorRole)), SingletonManagerName);

    /// <summary>The way every worker reaches the coordinator, wherever the singleton currently lives.</summary>
    public static IActorRef CoordinatorProxy(ActorSystem system) =>
        system.ActorOf(ClusterSingletonProxy.Props($"/user/{SingletonManagerName}",
            ClusterSingletonProxySettings.Create(system).WithRole(CoordinatorRole)), "coordinator-proxy");

    /// <summary>Leaves the cluster gracefully and stops the actor system.</summary>
    public static Task LeaveAsync(ActorSystem system) =>
        CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClusterLeavingReason.Instance);
}
