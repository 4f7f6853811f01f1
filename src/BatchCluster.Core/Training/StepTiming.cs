namespace BatchCluster.Core.Training;

/// <summary>
/// Where one step's wall time went, measured on the critical share (the one whose result arrived
/// last, so the step waited for it). Compute is that share's forward/backward time; Transfer is its
/// round trip on the coordinator's clock minus the worker's handling time (serialization, network,
/// reassembly, mailboxes); Update is the coordinator's averaging + optimizer time; Step is the wall
/// time from dispatching the shares to the committed update; Wait is what is left (the worker's
/// parameter load and gradient copy, dispatch, re-planning after faults).
/// </summary>
public readonly record struct StepTiming(double ComputeMs, double TransferMs, double UpdateMs, double StepMs)
{
    public double WaitMs => Math.Max(0, StepMs - ComputeMs - TransferMs - UpdateMs);
}

/// <summary>
/// What an engine measured about one step before committing it: the critical share's compute and
/// transfer time, the tensor payload bytes the step's messages carried, and each node's peak
/// resident memory in MiB (keyed by node address).
/// </summary>
/// <param name="BytesMoved">Tensor payload bytes that crossed a process boundary through the coordinator's link, both directions.</param>
/// <param name="AllocatedBytesByNode">Managed bytes each node allocated per report (its <see cref="Diagnostics.AllocationMeter"/>: exact over windows of 16 reports; null where not measured).</param>
/// <param name="WorkerLinkBytes">Tensor payload bytes through the busiest worker's link, both directions (null where not measured).</param>
/// <param name="BytesHandedOver">Tensor payload bytes handed to workers of the coordinator's own process and back: arrays passed by
/// reference, nothing copied or sent (kept apart from <paramref name="BytesMoved"/>, which is what crossed a process boundary).</param>
public sealed record StepMeasurements(double ComputeMs, double TransferMs, long BytesMoved, IReadOnlyDictionary<string, double> PeakMemoryMbByNode,
    IReadOnlyDictionary<string, long>? AllocatedBytesByNode = null, long? WorkerLinkBytes = null, long BytesHandedOver = 0);
