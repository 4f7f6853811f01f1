using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Serialization;
using BatchCluster.Cluster.Links;
using BatchCluster.Core.Data;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace BatchCluster.Cluster.Tests.Serialization;

/// <summary>Every message of the protocol survives our serializer, which Akka picks for it by configuration.</summary>
public class TrainingMessageSerializerTests(ConfiguredSerialization configured) : IClassFixture<ConfiguredSerialization>
{
    private static readonly float[] Tensor = Enumerable.Range(0, 1000).Select(i => i * 0.5f - 7f).ToArray();

    public static TheoryData<ITrainingMessage> Messages => new()
    {
        new TrainingProtocol.RegisterWorker("akka.tcp://batchcluster@10.0.0.2:4053/user/worker", "akka.tcp://batchcluster@10.0.0.2:4053", "cpu", 4, TrainingProtocol.Version),
        new TrainingProtocol.WorkerAccepted("run-1", new TrainingProtocol.RunSpec("fashion-mnist", 5000, "mlp", [256, 128], -3)),
        new TrainingProtocol.WorkerAccepted("run-1", new TrainingProtocol.RunSpec("fashion-mnist", 5000, "cnn", [], 1),
            new DataPlaneOffer("198.18.0.1", 4054, Token(1), Core.Training.TransferPrecision.Bf16, Ring: true)),
        new TrainingProtocol.WorkerRejected("protocol version 0 does not match"),
        new TrainingProtocol.WorkerReady("w", 12345.5),
        new TrainingProtocol.WorkerReady("w", 1, RingPort: 40123),
        new TrainingProtocol.ReduceShares("run-1", 42, 42, 2, 7, 1, 4, 65_536, [3, 0, 5], new TrainingProtocol.RingPeer("198.18.0.3", 40500, Token(2)), Token(3)),
        new TrainingProtocol.StepSkipped("run-1", 42, 43),
        new TrainingProtocol.ReductionFailed("run-1", 42, 1, "the upstream link closed", UpstreamSuspected: true),
        new TrainingProtocol.RunEnded("run-1", true),
        new TrainingProtocol.ComputeShare("run-1", 42, 3, [5, 1, 9], 16, new TrainingProtocol.ParameterSnapshot(42, Tensor)),
        new TrainingProtocol.ComputeShare("run-1", 42, 3, [5, 1, 9], 16, new TrainingProtocol.ParameterSnapshot(42, Tensor), HalfAt: 2),
        new TrainingProtocol.ComputeShare("run-1", 42, 3, [5, 1, 9], 16, new TrainingProtocol.ParameterSnapshot(42, ReadOnlyMemory<float>.Empty),
            new TrainingProtocol.ReduceShares("run-1", 42, 42, 0, 3, 0, 2, 8192, [3], new TrainingProtocol.RingPeer("198.18.0.3", 40500, Token(4)), Token(5))),
        new TrainingProtocol.ShareComputed("run-1", 42, 42, 3, 3, 6.25, Tensor, 99.5, 1.75, 2.5, 123_456_789),
        new TrainingProtocol.ShareComputed("run-1", 42, 42, 3, 32, 6.25, Tensor, 99.5, 1.75, 2.5, 123_456_789, 7, [0.5f, -1f, 2f, 3.25f]),
        new TrainingProtocol.ShareComputed("run-1", 42, 42, 3, 32, 6.25, Tensor, 99.5, 1.75, 2.5, 123_456_789, 7, null, new TrainingProtocol.HalfNorms(16, 20.5, 30.25)),
        new TrainingProtocol.Evaluate("run-1", 7, 1, DataSplit.Test, [100, 101, 7, 8], new TrainingProtocol.ParameterSnapshot(43, Tensor)),
        new TrainingProtocol.Evaluate("run-1", 7, 1, DataSplit.Test, [100, 101], new TrainingProtocol.ParameterSnapshot(43, Tensor), [0.25f, 1.5f]),
        new TrainingProtocol.WorkerAccepted("run-2", new TrainingProtocol.RunSpec("fashion-mnist", 5000, "cnn-bn", [], 8, BnBatch: 16)),
        new TrainingProtocol.EvaluationDone("run-1", 7, 1, 43, 12.5, 44, 50),
        new TrainingProtocol.WorkerLeaving("akka.tcp://batchcluster@10.0.0.2:4053/user/worker"),
        new TrainingProtocol.ShareFailed("run-1", 42, 3, "CUDA out of memory"),
        new TrainingProtocol.EvaluationFailed("run-1", 7, 1, "input of another shape"),
        new TensorTransferStart(9, new TrainingProtocol.ShareComputed("r", 1, 1, 0, 8, 1, ReadOnlyMemory<float>.Empty, 0, 0, 0, 0), 100_000, 2),
        new TensorChunk(9, 1, [1f, 2f, float.NaN]),
    };

    [Theory]
    [MemberData(nameof(Messages))]
    public void Round_trips_through_the_configured_serializer(ITrainingMessage message)
    {
        var serializer = configured.System.Serialization.FindSerializerFor(message);
        Assert.IsType<TrainingMessageSerializer>(serializer);
        var typed = (TrainingMessageSerializer)serializer;
        var bytes = typed.ToBinary(message);
        var back = typed.FromBinary(bytes, typed.Manifest(message));
        Assert.Equal(Describe(message), Describe(back));
    }

    [Fact]
    public void An_unknown_manifest_is_a_serialization_exception()
    {
        var serializer = configured.Serializer;
        Assert.Throws<SerializationException>(() => serializer.FromBinary([1, 2, 3], "zz"));
        // A truncated message as well: Akka then drops that message and keeps the connection.
        var bytes = serializer.ToBinary(new TrainingProtocol.ComputeShare("r", 1, 0, [1, 2], 2, new TrainingProtocol.ParameterSnapshot(1, Tensor)));
        Assert.Throws<SerializationException>(() => serializer.FromBinary(bytes[..^10], "cs"));
    }

    /// <summary>Records compare arrays and memories by reference; compare their contents instead.</summary>
    private static string Describe(object message) => message switch
    {
        TrainingProtocol.ComputeShare m => $"{m with { SampleIds = [], Parameters = m.Parameters with { Values = default }, ThenReduce = null }} ids {string.Join(',', m.SampleIds)} "
                                           + $"{Floats(m.Parameters.Values)} then {(m.ThenReduce is { } plan ? Describe(plan) : "nothing")}",
        TrainingProtocol.ShareComputed m => $"{m with { GradientSum = default, BatchNormSums = null }} {Floats(m.GradientSum)} bn {Optional(m.BatchNormSums)}",
        TrainingProtocol.Evaluate m => $"{m with { Rows = [], Parameters = m.Parameters with { Values = default }, RunningStatistics = null }} rows {string.Join(',', m.Rows)} "
                                       + $"{Floats(m.Parameters.Values)} running {Optional(m.RunningStatistics)}",
        TrainingProtocol.WorkerAccepted m => $"{m.RunId} {m.Spec with { HiddenSizes = [] }} {string.Join(',', m.Spec.HiddenSizes)} "
                                             + (m.DataPlane is { } o ? $"{o with { Token = [] }} {Convert.ToHexString(o.Token)}" : "no offer"),
        TrainingProtocol.ReduceShares m => $"{m with { Slots = [], Downstream = m.Downstream with { Token = [] }, UpstreamToken = [] }} "
                                           + $"{string.Join(',', m.Slots)} {Convert.ToHexString(m.Downstream.Token)} {Convert.ToHexString(m.UpstreamToken)}",
        TensorTransferStart m => $"{m.TransferId} {m.TotalLength} {m.ChunkCount} {Describe(m.Message)}",
        TensorChunk m => $"{m.TransferId} {m.Index} {Floats(m.Values)}",
        _ => message.ToString()!,
    };

    private static string Optional(float[]? values) => values is null ? "none" : Floats(values);

    private static byte[] Token(int seed) => Enumerable.Range(seed, FrameHeader.TokenBytes).Select(i => (byte)i).ToArray();

    private static string Floats(ReadOnlyMemory<float> values) => string.Join(',', values.ToArray().Select(v => BitConverter.SingleToInt32Bits(v)));
}
