using Akka.Actor;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// Holds the data set and one model replica; computes share gradients and evaluations on request.
/// It runs on a pinned dispatcher (a thread of its own), so its blocking TorchSharp work never
/// occupies the default dispatcher's threads that the coordinator and Akka itself run on.
/// </summary>
public sealed class WorkerActor : ReceiveActor
{
    public const string DispatcherId = "batchcluster.worker-dispatcher";

    private readonly DataSplits _data;
    private readonly ModelSpec _model;
    private ModelReplica? _replica;
    private long _loadedVersion = -1;
    // Reused for every share: the coordinator reads a share's gradient only until that step
    // commits, which is before it sends this worker any further work (see TrainingProtocol).
    private float[] _gradientSum = [];

    public static Props Props(DataSplits data, ModelSpec model) =>
        Akka.Actor.Props.Create(() => new WorkerActor(data, model)).WithDispatcher(DispatcherId);

    public WorkerActor(DataSplits data, ModelSpec model)
    {
        _data = data;
        _model = model;
        Receive<TrainingProtocol.ComputeShare>(OnComputeShare);
        Receive<TrainingProtocol.Evaluate>(OnEvaluate);
    }

    // The replica is created on the actor's own (pinned) thread: TorchSharp scopes are thread-static.
    protected override void PreStart()
    {
        _replica = new ModelReplica(_model);
        _gradientSum = new float[_replica.ParameterCount];
    }

    protected override void PostStop() => _replica?.Dispose();

    private ModelReplica ReplicaAt(TrainingProtocol.ParameterSnapshot parameters)
    {
        var replica = _replica!;
        if (_loadedVersion != parameters.Version)
        {
            replica.LoadParameters(parameters.Values.Span);
            _loadedVersion = parameters.Version;
        }
        return replica;
    }

    private void OnComputeShare(TrainingProtocol.ComputeShare work)
    {
        var replica = ReplicaAt(work.Parameters);
        var gradient = replica.ComputeGradientSum(_data.Train, work.SampleIds, work.MicroBatch, _gradientSum);
        Sender.Tell(new TrainingProtocol.ShareComputed(
            work.RunId, work.Step, work.Parameters.Version, work.ShareIndex, gradient.SampleCount, gradient.LossSum,
            gradient.GradientSum, gradient.GradientSumSquaredNorm, gradient.ComputeMilliseconds));
    }

    private void OnEvaluate(TrainingProtocol.Evaluate request)
    {
        var result = ReplicaAt(request.Parameters).Evaluate(_data.Of(request.Split), request.Start, request.Count);
        Sender.Tell(new TrainingProtocol.EvaluationDone(
            request.RunId, request.RequestId, request.Parameters.Version, result.LossSum, result.Correct, result.Count));
    }
}
