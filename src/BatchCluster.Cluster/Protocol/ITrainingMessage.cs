namespace BatchCluster.Cluster.Protocol;

/// <summary>
/// Marker for every message of our training protocol. Across processes it is bound to our own
/// serializer (never Akka's JSON default); in the local simulated cluster messages stay in memory.
/// </summary>
public interface ITrainingMessage;

/// <summary>
/// A message that carries one large float32 tensor (parameters or a gradient). The tensor
/// transport moves the tensor separately from the rest of the message, so that it can travel in
/// chunks well below Akka's frame size, or one day over a dedicated channel.
/// </summary>
public interface ITensorMessage : ITrainingMessage
{
    ReadOnlyMemory<float> Tensor { get; }

    /// <summary>The same message carrying <paramref name="tensor"/> instead.</summary>
    ITensorMessage WithTensor(ReadOnlyMemory<float> tensor);
}
