using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// Message frames (<see cref="FrameKind.Message"/>), made and read in this one place. The payload: the message's manifest,
/// one byte of length and its ASCII, then the message as <see cref="TrainingMessageSerializer"/> writes it for Akka.Remote.
/// Each end reads only the messages that may come its way (<see cref="FromCoordinator"/>, <see cref="FromWorkers"/>):
/// anything else, or bytes that are not a whole message, is a broken connection, as a corrupted tensor frame is.
/// </summary>
public static class MessageFrames
{
    /// <summary>What a worker accepts on its data connection: a share to compute.</summary>
    public static readonly IReadOnlySet<string> FromCoordinator = new HashSet<string> { "cs" };
    /// <summary>What the coordinator accepts on a worker's data connection: a share's result.</summary>
    public static readonly IReadOnlySet<string> FromWorkers = new HashSet<string> { "sc" };

    /// <summary>The whole frame, header and payload, ready to write: the serializer writes the message straight behind room for the header and manifest, one array.</summary>
    public static byte[] Frame(DataPlaneRun run, ITrainingMessage message)
    {
        string manifest = TrainingMessageSerializer.ManifestOf(message);
        var frame = TrainingMessageSerializer.Encode(message, reserve: FrameHeader.Size + 1 + manifest.Length);
        var payload = frame.AsSpan(FrameHeader.Size);
        payload[0] = (byte)manifest.Length;
        System.Text.Encoding.ASCII.GetBytes(manifest, payload[1..]);
        new FrameHeader(FrameKind.Message, run.Precision, run.RunTag, 0, 0, -1, payload.Length, FramePayload.Checksum(payload)).Write(frame);
        return frame;
    }

    /// <summary>Reads the message of a frame's payload (its size and checksum already checked by <see cref="TensorStream"/>).</summary>
    /// <exception cref="InvalidDataException">A message not in <paramref name="allowed"/>, or bytes that are not one.</exception>
    public static ITrainingMessage Decode(byte[] payload, IReadOnlySet<string> allowed)
    {
        int length = payload[0];
        if (payload.Length < 1 + length) throw new InvalidDataException($"a message frame of {payload.Length} bytes declares a {length}-byte manifest");
        string manifest = System.Text.Encoding.ASCII.GetString(payload, 1, length);
        if (!allowed.Contains(manifest)) throw new InvalidDataException($"a '{manifest}' message frame where only {string.Join(" or ", allowed.Select(m => $"'{m}'"))} may come");
        try
        {
            return (ITrainingMessage)TrainingMessageSerializer.Decode(payload, 1 + length, manifest);
        }
        catch (SerializationException e)
        {
            throw new InvalidDataException($"a malformed '{manifest}' message frame: {e.Message}", e);
        }
    }
}
