using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// On every coordinator-role node; acts only where the coordinator singleton lives (the oldest coordinator-role member):
/// downs a worker that <see cref="UnreachableWorkerRule{TMember}"/> says is due. Fed by the cluster's reachability events
/// and this node's dropped remoting connections (a member already down is not counted again), checked twice a second.
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
    public sealed record WorkerNodeDowned(Address Node, string Reason);

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
        Receive<ClusterEvent.ReachableMember>(e => rule.Reachable(e.Member));
        Receive<Akka.Remote.DisassociatedEvent>(e =>
        {
            if (cluster.State.Members.FirstOrDefault(m => m.Address.Equals(e.RemoteAddress) && m.HasRole(ClusterBootstrap.WorkerRole) && m.Status != MemberStatus.Down) is { } worker)
            {
                int drops = rule.Dropped(worker, Now());
                log.Warning("The connection to worker node {0} dropped ({1} within {2} s)", worker.Address, drops, UnreachableWorkerRule<Member>.DropWindow.TotalSeconds);
            }
        });
        Receive<ClusterEvent.MemberRemoved>(e => rule.Forget(e.Member));
        Receive<ClusterEvent.MemberDowned>(e => rule.Forget(e.Member));
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        Receive<Tick>(_ =>
        {
            if (rule.Watched.Count == 0 || !HostsTheCoordinator(cluster)) return;
            var state = cluster.State;
            int reachableOthers = state.Members.Count(m => m.UniqueAddress != cluster.SelfUniqueAddress && !state.Unreachable.Contains(m));
            foreach (var (worker, reason) in rule.Due(Now(), reachableOthers))
            {
                log.Warning("Worker node {0}: {1}, while the rest of the cluster answers: downing it (it may join again), " +
                    "so that a link it broke cannot take the coordinator down with it", worker.Address, reason);
                Context.System.EventStream.Publish(new WorkerNodeDowned(worker.Address, reason));
                cluster.Down(worker.Address);
            }
        });
        cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IReachabilityEvent), typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.MemberDowned));
        Context.System.EventStream.Subscribe(Self, typeof(Akka.Remote.DisassociatedEvent));
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

    protected override void PostStop()
    {
        Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self, typeof(Akka.Remote.DisassociatedEvent));
    }
}
