using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Tests.Links;

/// <summary>
/// A message frame is a checked header and a payload that reads back as the message it was made from, and each end refuses
/// what may not come its way: another direction's message, a manifest that overruns the payload, or a body that is not a
/// whole message.
/// </summary>
public class MessageFramesTests
{
    private static readonly DataPlaneRun Run = new(FrameHeader.TagOf("run-1"), 1000, Core.Training.TransferPrecision.Bf16);

    /// <summary>The frame's payload, after its header has been read and checked as a receiver does.</summary>
    private static byte[] Payload(ITrainingMessage message)
    {
        var frame = MessageFrames.Frame(Run, message);
        var header = FrameHeader.Read(frame, FrameKind.Message, Run.RunTag, Run.ParameterCount, Run.Precision);
        var payload = frame[FrameHeader.Size..];
        Assert.Equal(payload.Length, header.PayloadBytes);
        Assert.Equal(FramePayload.Checksum(payload), header.Checksum);
        return payload;
    }

    private static readonly TrainingProtocol.ComputeShare Share =
        new("run-1", 42, 3, [5, 1, 9, 60_000], 2, new TrainingProtocol.ParameterSnapshot(42, ReadOnlyMemory<float>.Empty));
    private static readonly TrainingProtocol.ShareComputed Result =
        new("run-1", 42, 42, 3, 4, 6.25, ReadOnlyMemory<float>.Empty, 99.5, 1.75, 2.5, 123_456_789, 7, [0.5f, -1f]);

    [Fact]
    public void A_request_and_a_result_read_back_as_sent()
    {
        var share = Assert.IsType<TrainingProtocol.ComputeShare>(MessageFrames.Decode(Payload(Share), MessageFrames.FromCoordinator));
        Assert.Equal((Share.RunId, Share.Step, Share.ShareIndex, Share.MicroBatch, Share.Parameters.Version), (share.RunId, share.Step, share.ShareIndex, share.MicroBatch, share.Parameters.Version));
        Assert.Equal(Share.SampleIds, share.SampleIds);
        Assert.True(share.Parameters.Values.IsEmpty);

        var result = Assert.IsType<TrainingProtocol.ShareComputed>(MessageFrames.Decode(Payload(Result), MessageFrames.FromWorkers));
        Assert.Equal(Result with { BatchNormSums = null, GradientSum = default }, result with { BatchNormSums = null, GradientSum = default });
        Assert.True(result.GradientSum.IsEmpty);
        Assert.Equal(Result.BatchNormSums, result.BatchNormSums);
    }

    [Fact]
    public void A_message_of_the_other_direction_is_refused()
    {
        var e = Assert.Throws<InvalidDataException>(() => MessageFrames.Decode(Payload(Share), MessageFrames.FromWorkers));
        Assert.Contains("a 'cs' message frame where only 'sc' may come", e.Message);
        e = Assert.Throws<InvalidDataException>(() => MessageFrames.Decode(Payload(new TrainingProtocol.RunEnded("run-1", true)), MessageFrames.FromCoordinator));
        Assert.Contains("a 're' message frame", e.Message);
    }

    [Fact]
    public void A_manifest_longer_than_the_payload_is_refused()
    {
        var e = Assert.Throws<InvalidDataException>(() => MessageFrames.Decode([200, (byte)'s', (byte)'c'], MessageFrames.FromWorkers));
        Assert.Contains("declares a 200-byte manifest", e.Message);
    }

    [Fact]
    public void A_truncated_message_is_refused_as_malformed()
    {
        var payload = Payload(Result);
        var e = Assert.Throws<InvalidDataException>(() => MessageFrames.Decode(payload[..^5], MessageFrames.FromWorkers));
        Assert.Contains("a malformed 'sc' message frame", e.Message);
    }
}
