using Akka.Actor;
using Akka.Configuration;

namespace BatchCluster.Cluster.Tests.Security;

/// <summary>
/// A process that speaks plain Akka.Remote (not a cluster member, no TLS) with our serializer bound
/// for our protocol and Akka's defaults for the rest: what a careless or hostile neighbour on the
/// network runs. <see cref="Recorder"/> keeps what its actors receive.
/// </summary>
public static class PlainAkkaPeer
{
    public static Config Config => Nodes.NonMemberPeer.Config;

    public static ActorSystem Start() => Nodes.NonMemberPeer.Start();

    public static Task<IActorRef> ResolveOnceStartedAsync(ActorSystem peer, string path, TimeSpan within) =>
        Nodes.NonMemberPeer.ResolveOnceStartedAsync(peer, path, within);

    /// <summary>A tiny run for a multi-node cluster in which a peer meddles: an 8-unit MLP on 64 synthetic images.</summary>
    public static (Core.Training.TrainingConfig Config, Core.Data.DataSplits Data) TinyRun(long steps) =>
        (new Core.Training.TrainingConfig
        {
            Dataset = "synthetic", Model = Core.Models.ModelSpec.Mlp(8), GlobalBatch = 16, Steps = steps, EvalEvery = 0, TrainEvalSamples = 0, Seed = 3,
        }, Core.Data.SyntheticImages.Create(seed: 1, trainCount: 64, validationCount: 16, testCount: 16));

    /// <summary>Keeps every message it receives (lock the list to read it).</summary>
    public sealed class Recorder : ReceiveActor
    {
        public Recorder(List<object> received) => ReceiveAny(m => { lock (received) received.Add(m); });
    }
}
