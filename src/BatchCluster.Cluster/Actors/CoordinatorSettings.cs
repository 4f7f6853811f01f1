using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// How the coordinator runs: the elastic bounds (<paramref name="StartWorkers"/> ready workers
/// before the first step; below <paramref name="MinWorkers"/> at a step boundary the run pauses
/// until enough are back), how long a share may take before it is late, what workers must load,
/// and the evaluation set sizes it splits over them (TrainEvaluationCount: the fixed training
/// subset evaluated before each validation for the generalization gap; 0 turns it off). Workers in
/// other processes get their tensors over the data plane (<paramref name="UseDataPlane"/>, listening
/// on <paramref name="DataPort"/>, 0 = any free port) or, when it is off, inside Akka messages.
/// </summary>
public sealed record CoordinatorSettings(
    int StartWorkers,
    int MinWorkers,
    TimeSpan StepDeadline,
    TrainingProtocol.RunSpec Spec,
    int ValidationCount,
    int TestCount,
    bool WatchClusterMembership,
    int TrainEvaluationCount,
    bool UseDataPlane = true,
    int DataPort = 0,
    Security.ClusterTls? Tls = null)
{
    public int StartWorkers { get; } = StartWorkers >= 1 ? StartWorkers : throw new ArgumentOutOfRangeException(nameof(StartWorkers), "at least one worker must be ready to start");
    public int MinWorkers { get; } = MinWorkers >= 1 ? MinWorkers : throw new ArgumentOutOfRangeException(nameof(MinWorkers), "the floor is at least one worker");
}
