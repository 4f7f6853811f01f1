namespace BatchCluster.Core.Tests.Diagnostics;

/// <summary>
/// Tests that measure the whole process (its resident memory, every thread's step spans) run alone: tests running beside
/// them (models, data sets, training) would add to what they measure.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideCollection
{
    public const string Name = "process-wide measurements";
}
