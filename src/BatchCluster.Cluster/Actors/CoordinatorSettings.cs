using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// How the coordinator runs a step: how many ready workers it needs before it starts (or resumes)
/// a step, how long a step may take before late shares are re-planned, what workers must load,
/// and the evaluation set sizes it splits over them (TrainEvaluationCount: the fixed training
/// subset evaluated before each validation for the generalization gap; 0 turns it off).
/// </summary>
public sealed record CoordinatorSettings(
    int MinWorkers,
    TimeSpan StepDeadline,
    TrainingProtocol.RunSpec Spec,
    int ValidationCount,
    int TestCount,
    bool WatchClusterMembership,
    int TrainEvaluationCount);
