using Akka.Actor;
using Akka.Cluster;

namespace BatchCluster.Cluster.Nodes;

/// <summary>
/// Who may speak for the run (docs/security.md, "Who may say what"). A message's sender is what the sending process
/// claims: without TLS anyone on the network can name any path. So a worker believes a message that changes its life
/// only from the exact actor that accepted it (path and UID, which a path typed by a stranger lacks), and an
/// acceptance or refusal from a coordinator it does not know yet only from the singleton's current host: the oldest
/// Up member with the coordinator role, as Akka's singleton manager chooses it — not any member with that role.
/// </summary>
public static class CoordinatorIdentity
{
    /// <summary>The same actor incarnation: Akka's own equality of actor references, which compares the path and the UID
    /// (a restarted or re-created actor, or a path typed without one, has another).</summary>
    public static bool IsExactly(IActorRef sender, IActorRef? expected) => expected is not null && sender.Equals(expected);

    /// <summary>Whether <paramref name="sender"/> is an actor under the coordinator singleton's manager on the member that hosts the singleton now.</summary>
    public static bool IsOnSingletonHost(IActorRef sender, Akka.Cluster.Cluster cluster)
    {
        var elements = sender.Path.Elements;
        if (elements.Count < 2 || elements[0] != "user" || elements[1] != ClusterBootstrap.SingletonManagerName) return false;
        return SingletonHost(cluster.State.Members) is { } host && host.Equals(sender.Path.Address);
    }

    /// <summary>The oldest Up member with the coordinator role: where Akka's singleton manager runs the singleton.</summary>
    public static Address? SingletonHost(IEnumerable<Member> members)
    {
        Member? oldest = null;
        foreach (var member in members)
            if (member.Status == MemberStatus.Up && member.HasRole(ClusterBootstrap.CoordinatorRole) && (oldest is null || member.IsOlderThan(oldest)))
                oldest = member;
        return oldest?.Address;
    }
}
