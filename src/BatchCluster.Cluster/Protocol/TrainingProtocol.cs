using BatchCluster.Core.Data;

namespace BatchCluster.Cluster.Protocol;

/// <summary>
/// The messages between the coordinator and its workers (docs/architecture.md, "One step"), the
/// same in the local simulated cluster and across processes. Every request carries the run id and
/// the parameter version it must be computed at; every reply echoes them, so the coordinator can
/// drop stale or foreign work.
///
/// <para><b>Who owns a tensor</b> (promise 7). A tensor handed to a message belongs to the
/// receiver from then on; the sender never writes it again, in one process as across processes,
/// where the message itself is the buffer:</para>
/// <list type="bullet">
/// <item><see cref="ParameterSnapshot"/>: the coordinator copies its parameters into a fresh array
/// once per parameter version and never writes that array; any number of workers read it (it is
/// immutable, so sharing it is safe). The live parameters never leave the coordinator.</item>
/// <item><see cref="ShareComputed.GradientSum"/>: the worker takes a buffer from
/// <see cref="Links.TensorBuffers"/> for each share, fills it, sends it and keeps no reference.
/// The coordinator owns it on arrival and gives it back to the pool after the step commits (or
/// when it drops the result), so a worker that computes twice in one step can never overwrite a
/// gradient the coordinator still holds.</item>
/// </list>
/// <para>Across processes the tensors of <see cref="ComputeShare"/>, <see cref="Evaluate"/> and
/// <see cref="ShareComputed"/> travel on the data plane (DataPlane/), not in the messages: the
/// message then carries an empty tensor, and the parameters of a version are sent to a worker
/// once, before its first request at that version. Frames on the data plane are encoded into
/// buffers the connection owns, so the rule above holds there as well. In a star run the step's
/// two messages, <see cref="ComputeShare"/> and <see cref="ShareComputed"/>, travel on the data
/// connection as well, each right behind its tensor (message frames, docs/architecture.md): one
/// reader thread delivers both, where Akka.Remote's threads would wake the receiver a second time.</para>
/// </summary>
public static class TrainingProtocol
{
    /// <summary>Bumped whenever a message's meaning or encoding changes; workers must match it.</summary>
    public const int Version = 8;

    /// <summary>Parameters at one version: an array nobody writes after it was made (see above).</summary>
    public sealed record ParameterSnapshot(long Version, ReadOnlyMemory<float> Values);

    /// <summary>Worker → coordinator, on start: who it is and what it offers.</summary>
    public sealed record RegisterWorker(string WorkerId, string Address, string Device, int Threads, int ProtocolVersion) : ITrainingMessage;

    /// <summary>
    /// Coordinator → worker: the run it joins and what it needs to build its replica and data; for a
    /// worker in another process, where its tensors go (<see cref="Links.DataPlaneOffer"/>: the
    /// coordinator's data-plane endpoint and this worker's token). Without an offer tensors travel in
    /// the messages themselves (in-process, or <c>--tensor-transport akka</c>).
    /// </summary>
    public sealed record WorkerAccepted(string RunId, RunSpec Spec, Links.DataPlaneOffer? DataPlane = null) : ITrainingMessage;

    /// <summary>What a worker needs to know about the run: the model and the data set to load locally.</summary>
    /// <param name="BnBatch">The ghost batch of --bn-batch (docs/batch-norm.md); 0: batch norm over each micro-batch.</param>
    public sealed record RunSpec(string Dataset, int ValidationSize, string Model, int[] HiddenSizes, long Seed, int BnBatch = 0);

    /// <summary>Coordinator → worker: refused (e.g. another protocol version); the reason says why.</summary>
    public sealed record WorkerRejected(string Reason) : ITrainingMessage;

    /// <summary>Worker → coordinator: replica and data are loaded; measured forward/backward throughput.</summary>
    /// <param name="RingPort">In a ring run, the port its ring neighbour connects to (on the worker's own address); 0 otherwise.</param>
    public sealed record WorkerReady(string WorkerId, double SamplesPerSecond, int RingPort = 0) : ITrainingMessage;

    /// <summary>Coordinator → workers: the run is over; worker nodes exit.</summary>
    public sealed record RunEnded(string RunId, bool Succeeded) : ITrainingMessage;

    /// <summary>Worker → coordinator: this worker is shutting down (SIGTERM); re-plan its work now, not after the failure detector.</summary>
    public sealed record WorkerLeaving(string WorkerId) : ITrainingMessage;

    /// <summary>Compute the gradient sum of <paramref name="SampleIds"/> at parameters version <c>Parameters.Version</c>.</summary>
    /// <param name="ThenReduce">In a ring run, on a worker's first share of a step: the step's ring as planned when it started,
    /// to reduce as soon as this worker's shares of it are computed (one message fewer per worker and step than sending it apart).</param>
    /// <param name="HalfAt">Where a share that is a whole step's batch is cut in two for the noise estimate (<c>ShareHalves</c>):
    /// the worker computes the first <c>HalfAt</c> samples and the rest apart and reports both halves' squared norms; 0: whole.</param>
    public sealed record ComputeShare(string RunId, long Step, int ShareIndex, int[] SampleIds, int MicroBatch, ParameterSnapshot Parameters,
        ReduceShares? ThenReduce = null, int HalfAt = 0)
        : ITensorMessage
    {
        public ReadOnlyMemory<float> Tensor => Parameters.Values;
        public ITensorMessage WithTensor(ReadOnlyMemory<float> tensor) => this with { Parameters = Parameters with { Values = tensor } };
    }

    /// <summary>
    /// The gradient SUM and loss SUM over a share (see Core's ShareGradient) — under --bn-batch with the sums of its ghost
    /// batches' batch-norm statistics — with what the worker measured: forward/backward time, its whole handling time (from the complete request to the
    /// reply, so the coordinator can tell transfer from work), its process's peak memory, and the
    /// managed bytes its process allocated since its previous reply (the allocation per step).
    /// </summary>
    public sealed record ShareComputed(
        string RunId, long Step, long ParameterVersion, int ShareIndex, int SampleCount, double LossSum,
        ReadOnlyMemory<float> GradientSum, double GradientSumSquaredNorm, double ComputeMilliseconds,
        double HandlingMilliseconds, long PeakMemoryBytes, long AllocatedBytes = 0, float[]? BatchNormSums = null,
        HalfNorms? Halves = null) : ITensorMessage
    {
        public ReadOnlyMemory<float> Tensor => GradientSum;
        public ITensorMessage WithTensor(ReadOnlyMemory<float> tensor) => this with { GradientSum = tensor };
    }

    /// <summary>The squared norms of a share's two gradient halves, when <see cref="ComputeShare.HalfAt"/> asked for them.</summary>
    public sealed record HalfNorms(int FirstSize, double FirstSquaredNorm, double SecondSquaredNorm);

    /// <summary>Evaluate rows of a split in eval mode (a part of the split; after a re-plan not necessarily one range).</summary>
    /// <param name="RunningStatistics">Under --bn-batch the coordinator's batch-norm running statistics to evaluate with; null otherwise.</param>
    public sealed record Evaluate(string RunId, int RequestId, int Part, DataSplit Split, int[] Rows, ParameterSnapshot Parameters,
        float[]? RunningStatistics = null)
        : ITensorMessage
    {
        public ReadOnlyMemory<float> Tensor => Parameters.Values;
        public ITensorMessage WithTensor(ReadOnlyMemory<float> tensor) => this with { Parameters = Parameters with { Values = tensor } };
    }

    public sealed record EvaluationDone(string RunId, int RequestId, int Part, long ParameterVersion, double LossSum, long Correct, long Count) : ITrainingMessage;

    /// <summary>Where a ring member's downstream neighbour listens, and the token that neighbour expects from it for this ring.</summary>
    public sealed record RingPeer(string Host, int Port, byte[] Token);

    /// <summary>
    /// Coordinator → ring member (docs/architecture.md, "The ring"): reduce the gradient sums of
    /// <paramref name="Slots"/> (this worker's shares of <paramref name="Step"/>, added in this order)
    /// with the ring's other members, as member <paramref name="Index"/> of <paramref name="Members"/>,
    /// in chunks of <paramref name="ChunkValues"/>: send to <paramref name="Downstream"/>, accept only
    /// <paramref name="UpstreamToken"/> from upstream. <paramref name="Generation"/> counts the rings
    /// of this step (a ring re-formed after a fault); <paramref name="Epoch"/> names the links: a new
    /// epoch means new connections.
    /// </summary>
    public sealed record ReduceShares(string RunId, long Step, long Version, int Generation, long Epoch, int Index, int Members,
        int ChunkValues, int[] Slots, RingPeer Downstream, byte[] UpstreamToken) : ITrainingMessage;

    /// <summary>Coordinator → ring members: step <paramref name="Step"/> was not applied (non-finite); version <paramref name="Version"/> is the parameters of before.</summary>
    public sealed record StepSkipped(string RunId, long Step, long Version) : ITrainingMessage;

    /// <summary>Ring member → coordinator: its part of a reduction failed; <paramref name="UpstreamSuspected"/>: its upstream link broke or sent a bad frame.</summary>
    public sealed record ReductionFailed(string RunId, long Step, int Generation, string Reason, bool UpstreamSuspected) : ITrainingMessage;

    /// <summary>Worker → coordinator: computing the share failed (the reason says how); the coordinator re-plans it at once.</summary>
    public sealed record ShareFailed(string RunId, long Step, int ShareIndex, string Reason) : ITrainingMessage;

    /// <summary>Worker → coordinator: evaluating the part failed; the coordinator gives it to another worker.</summary>
    public sealed record EvaluationFailed(string RunId, int RequestId, int Part, string Reason) : ITrainingMessage;
}
