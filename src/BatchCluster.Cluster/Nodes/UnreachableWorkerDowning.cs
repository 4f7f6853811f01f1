using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// On every coordinator-role node; acts only where the coordinator singleton lives (the oldest coordinator-role member):
/// downs a worker that <see cref="UnreachableWorkerRule{TMember}"/> says is due. Fed by the cluster's reachability events,
/// checked twice a second.
/// </summary>
public sealed class UnreachableWorkerDowning : ReceiveActor, IWithTimers
{
    /// <summary>How long a worker stays unreachable before the coordinator's node downs it: below stable-after (8 s, cluster.hocon).</summary>
    public static readonly TimeSpan After = TimeSpan.FromSeconds(4);

    public const string Name = "unreachable-worker-downing";

    /// <summary>
    /// Published on the node's event stream when this rule downs a worker node, so the coordinator of the run (on the same
    /// node: the rule acts only there) records the decision in the run's event log (<c>WorkerNodeDowned</c>).
    /// </summary>
    public sealed record WorkerNodeDowned(Address Node, double UnreachableSeconds);

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    public static Props Props() => Akka.Actor.Props.Create(() => new UnreachableWorkerDowning());

    public UnreachableWorkerDowning()
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var log = Context.GetLogger();
        var rule = new UnreachableWorkerRule<Member>(After);
        long started = Stopwatch.GetTimestamp();
        TimeSpan Now() => Stopwatch.GetElapsedTime(started);

        Receive<ClusterEvent.UnreachableMember>(e =>
        {
            if (e.Member.HasRole(ClusterBootstrap.WorkerRole)) rule.Unreachable(e.Member, Now());
        });
        Receive<ClusterEvent.ReachableMember>(e => rule.Forget(e.Member));
        Receive<ClusterEvent.MemberRemoved>(e => rule.Forget(e.Member));
        Receive<ClusterEvent.MemberDowned>(e => rule.Forget(e.Member));
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        Receive<Tick>(_ =>
        {
            if (rule.Watched.Count == 0 || !HostsTheCoordinator(cluster)) return;
            var state = cluster.State;
            int reachableOthers = state.Members.Count(m => m.UniqueAddress != cluster.SelfUniqueAddress && !state.Unreachable.Contains(m));
            foreach (var worker in rule.Due(Now(), reachableOthers))
            {
                log.Warning("Worker node {0} has been unreachable for {1} s while the rest of the cluster answers: downing it (it may join again), " +
                    "so that a link it broke cannot take the coordinator down with it", worker.Address, After.TotalSeconds);
                Context.System.EventStream.Publish(new WorkerNodeDowned(worker.Address, After.TotalSeconds));
                cluster.Down(worker.Address);
            }
        });
        cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IReachabilityEvent), typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.MemberDowned));
        Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(500));
    }

    /// <summary>
    /// Whether this node is the oldest coordinator-role member: where the singleton runs. Leaving counts: a coordinator
    /// node leaves the cluster when its run has ended, and a bad member must not take it down on its way out either.
    /// </summary>
    private static bool HostsTheCoordinator(Akka.Cluster.Cluster cluster)
    {
        var oldest = cluster.State.Members.Where(m => (m.Status is MemberStatus.Up or MemberStatus.Leaving or MemberStatus.Exiting) && m.HasRole(ClusterBootstrap.CoordinatorRole))
            .OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();
        return oldest is not null && oldest.UniqueAddress == cluster.SelfUniqueAddress;
    }

    protected override void PostStop() => Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
}
