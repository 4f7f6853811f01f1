using BatchCluster.Core.Optimizers;

namespace BatchCluster.Core.Checkpoints;

/// <summary>
/// Everything needed to continue a run exactly: the step (= parameter version) to run next, the
/// parameters, the optimizer state, and the sampler position. The sampler itself holds no random
/// state: batches are a pure function of (seed, epoch, index in epoch), so (Epoch, IndexInEpoch)
/// of the next step is the whole sampler and RNG state. The fingerprint names the configuration
/// that produced it; a checkpoint only continues a run with the same fingerprint. A run whose batch
/// changes (docs/adaptive-batch.md) also keeps <see cref="Sizing"/>: its next batch, its exact sample
/// offset, τ and the smoothed noise estimates (null for a fixed batch: the step says it all). A run with
/// --bn-batch keeps the coordinator's batch-norm <see cref="RunningStatistics"/> (null otherwise).
/// </summary>
public sealed record CheckpointState(
    string ConfigFingerprint,
    long NextStep,
    int Epoch,
    int IndexInEpoch,
    float[] Parameters,
    OptimizerState Optimizer,
    BatchSizing.BatchSizingState? Sizing = null,
    float[]? RunningStatistics = null);
