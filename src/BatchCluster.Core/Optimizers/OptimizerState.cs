namespace BatchCluster.Core.Optimizers;

/// <summary>Everything an optimizer carries between steps, for checkpoints: its name, step count and state buffers.</summary>
public sealed record OptimizerState(string Name, long StepCount, IReadOnlyList<float[]> Buffers);
