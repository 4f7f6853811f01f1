using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Protocol;

public static class RunSpecs
{
    /// <summary>What every worker must know of a run's configuration to build its replica and load its data.</summary>
    public static TrainingProtocol.RunSpec Of(TrainingConfig config) =>
        new(config.Dataset, config.ValidationSize, config.Model.Name, config.Model.HiddenSizes.ToArray(), config.Seed, config.BnBatch ?? 0);
}
