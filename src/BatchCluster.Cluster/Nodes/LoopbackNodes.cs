using Akka.Actor;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// A multi-node cluster inside one process: one ActorSystem per node on 127.0.0.1 (any free port),
/// joined over TCP, the run's supervisor as the coordinator singleton, workers through the proxy.
/// Every message crosses a real Akka.Remote connection and tensors the data plane; only the
/// machines are missing. Used by tests and by <c>bench scale</c>.
/// </summary>
public sealed class LoopbackNodes : IAsyncDisposable
{
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(60);
    private readonly List<ActorSystem> _workers = [];

    public ActorSystem Coordinator { get; }
    public NodeAddress Seed { get; }
    public IReadOnlyList<ActorSystem> WorkerSystems => _workers;

    private LoopbackNodes(ActorSystem coordinator)
    {
        Coordinator = coordinator;
        var address = Akka.Cluster.Cluster.Get(coordinator).SelfAddress;
        Seed = new NodeAddress(address.Host!, address.Port!.Value);
    }

    /// <summary>Starts the coordinator node and hosts <paramref name="runSupervisor"/> as its singleton.</summary>
    public static async Task<LoopbackNodes> StartAsync(Props runSupervisor, CancellationToken cancellation = default)
    {
        var system = ClusterBootstrap.Start(ClusterBootstrap.CoordinatorRole, "127.0.0.1", 0);
        if (!await ClusterBootstrap.JoinAsync(system, [], JoinTimeout, cancellation))
        {
            await system.Terminate();
            throw new InvalidOperationException($"the coordinator node did not come up within {JoinTimeout.TotalSeconds:F0} s");
        }
        ClusterBootstrap.StartCoordinatorSingleton(system, runSupervisor);
        return new LoopbackNodes(system);
    }

    /// <summary>Starts a worker-role node and runs the actor <paramref name="worker"/> makes from the coordinator proxy.</summary>
    public async Task<ActorSystem> AddWorkerNodeAsync(Func<IActorRef, Props> worker, CancellationToken cancellation = default)
    {
        var system = ClusterBootstrap.Start(ClusterBootstrap.WorkerRole, "127.0.0.1", 0);
        lock (_workers) _workers.Add(system);
        if (!await ClusterBootstrap.JoinAsync(system, [Seed], JoinTimeout, cancellation))
            throw new InvalidOperationException($"a worker node did not join {Seed} within {JoinTimeout.TotalSeconds:F0} s");
        system.ActorOf(worker(ClusterBootstrap.CoordinatorProxy(system)), "worker");
        return system;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var system in Enumerable.Reverse(_workers)) await system.Terminate();
        await Coordinator.Terminate();
    }
}
