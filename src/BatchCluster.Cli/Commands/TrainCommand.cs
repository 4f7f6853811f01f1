using BatchCluster.Cli.Options;

namespace BatchCluster.Cli.Commands;

/// <summary><c>batchcluster train</c>: one run on the local simulated cluster or the plain loop.</summary>
public static class TrainCommand
{
    public static Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        var config = TrainOptions.Parse(new FlagSet(args, TrainOptions.Flags, "train"));
        if (config.TransferPrecision != Core.Training.TransferPrecision.Fp32)
            throw new UsageException("--transfer-precision applies to workers in other processes (node --role coordinator); the workers of 'train' share fp32 arrays in one process");
        var host = RunHost.Prepare(config);
        return host.RunAsync(config.Engine.ToString().ToLowerInvariant(), config.Workers,
            (events, onStep) => Engines.RunAsync(config, host.Data, host.Initial, events, host.LogPath, onStep, cancellation, host.ResumeFrom));
    }
}
