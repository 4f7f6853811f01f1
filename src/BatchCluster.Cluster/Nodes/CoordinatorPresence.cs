using Akka.Actor;
using Akka.Cluster;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// Watches, on a worker node, whether the cluster still has a coordinator-role member. When the
/// last one is removed (downed after a crash, or gone), <see cref="Lost"/> completes: the worker
/// node then restarts its actor system and joins the seeds again, so that a coordinator restarted
/// with --resume finds its workers. (When the singleton merely moves to another coordinator-role
/// node, a coordinator-role member remains and the worker just registers again.)
/// </summary>
public sealed class CoordinatorPresence : ReceiveActor
{
    public static Props Props(TaskCompletionSource lost) => Akka.Actor.Props.Create(() => new CoordinatorPresence(lost));

    public CoordinatorPresence(TaskCompletionSource lost)
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        bool seen = false;
        Receive<ClusterEvent.MemberUp>(up => seen |= up.Member.HasRole(ClusterBootstrap.CoordinatorRole));
        Receive<ClusterEvent.MemberRemoved>(removed =>
        {
            if (!removed.Member.HasRole(ClusterBootstrap.CoordinatorRole)) return;
            bool anyLeft = cluster.State.Members.Any(m => m.HasRole(ClusterBootstrap.CoordinatorRole) && m.Status == MemberStatus.Up);
            if (seen && !anyLeft) lost.TrySetResult();
        });
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved));
    }

    protected override void PostStop() => Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
}
