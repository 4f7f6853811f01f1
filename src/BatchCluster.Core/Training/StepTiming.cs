namespace BatchCluster.Core.Training;

/// <summary>
/// Where one step's wall time went. Compute is the slowest share's forward/backward time (the
/// critical path); Update is the coordinator's averaging + optimizer time; Step is the wall time
/// from dispatching the shares to the committed update; Wait is what is left (messaging, queueing).
/// </summary>
public readonly record struct StepTiming(double ComputeMs, double UpdateMs, double StepMs)
{
    public double WaitMs => Math.Max(0, StepMs - ComputeMs - UpdateMs);
}
