using Akka.Actor;
using Akka.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace BatchCluster.Cluster.Serialization;

/// <summary>
/// Takes the place of Akka's JSON serializer (identifier 1, Newtonsoft with
/// <c>TypeNameHandling.All</c>) on every node of a multi-node cluster (cluster-config/cluster.hocon).
/// A payload from the network names the serializer that must read it: while the JSON serializer
/// was registered, any peer could send JSON naming any .NET type (say
/// <c>System.Diagnostics.Process</c>) and have it built here, even though none of our messages
/// use JSON. This serializer reads nothing and writes nothing: an incoming payload of identifier 1 is
/// refused with <see cref="SerializationException"/> (Akka drops that one message and keeps the
/// connection), and a message of a type without a binding of its own cannot be sent at all.
/// </summary>
public sealed class RefusingSerializer : Serializer
{
    public RefusingSerializer(ExtendedActorSystem system) : base(system) { }

    /// <summary>The constructor Akka calls for the serializer named <c>json</c> (it passes that serializer's settings, unused here).</summary>
    public RefusingSerializer(ExtendedActorSystem system, Akka.Configuration.Config settings) : base(system) { }

    /// <summary>The identifier of Akka's JSON serializer, which this one replaces.</summary>
    public const int JsonIdentifier = 1;

    public override int Identifier => JsonIdentifier;

    public override bool IncludeManifest => true;

    public override byte[] ToBinary(object obj) =>
        throw new SerializationException($"{obj.GetType()} has no serializer of its own; BatchCluster nodes send only their protocol's and Akka's own messages");

    public override object FromBinary(byte[] bytes, Type type) =>
        throw new SerializationException($"refused a {bytes.Length}-byte JSON payload{(type is null ? "" : $" naming {type}")}: JSON is never accepted from the network");
}
