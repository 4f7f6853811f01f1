using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// The payload of a message frame (<see cref="FrameKind.Message"/>): the message's manifest, one byte of length and its
/// ASCII, then the message as <see cref="TrainingMessageSerializer"/> writes it for Akka.Remote. Each end reads only the
/// messages that may come its way (<see cref="FromCoordinator"/>, <see cref="FromWorkers"/>): anything else, or bytes that
/// are not a whole message, is a broken connection, as a corrupted tensor frame is.
/// </summary>
public static class MessageFrames
{
    /// <summary>What a worker accepts on its data connection: a share to compute.</summary>
    public static readonly IReadOnlySet<string> FromCoordinator = new HashSet<string> { "cs" };
    /// <summary>What the coordinator accepts on a worker's data connection: a share's result.</summary>
    public static readonly IReadOnlySet<string> FromWorkers = new HashSet<string> { "sc" };

    public static byte[] Encode(ITrainingMessage message)
    {
        string manifest = TrainingMessageSerializer.ManifestOf(message);
        byte[] body = TrainingMessageSerializer.Encode(message);
        var payload = new byte[1 + manifest.Length + body.Length];
        payload[0] = (byte)manifest.Length;
        System.Text.Encoding.ASCII.GetBytes(manifest, payload.AsSpan(1));
        body.CopyTo(payload, 1 + manifest.Length);
        return payload;
    }

    /// <exception cref="InvalidDataException">A message not in <paramref name="allowed"/>, or bytes that are not one.</exception>
    public static ITrainingMessage Decode(byte[] payload, IReadOnlySet<string> allowed)
    {
        int length = payload[0];
        if (payload.Length < 1 + length) throw new InvalidDataException($"a message frame of {payload.Length} bytes declares a {length}-byte manifest");
        string manifest = System.Text.Encoding.ASCII.GetString(payload, 1, length);
        if (!allowed.Contains(manifest)) throw new InvalidDataException($"a '{manifest}' message frame where only {string.Join(" or ", allowed.Select(m => $"'{m}'"))} may come");
        try
        {
            return (ITrainingMessage)TrainingMessageSerializer.Decode(payload[(1 + length)..], manifest);
        }
        catch (SerializationException e)
        {
            throw new InvalidDataException($"a malformed '{manifest}' message frame: {e.Message}", e);
        }
    }
}
