namespace BatchCluster.Cluster.Protocol;

/// <summary>
/// Marker for every message of our training protocol. Across processes it is bound to our own
/// serializer (never Akka's JSON default); in the local simulated cluster messages stay in memory.
/// </summary>
public interface ITrainingMessage;
