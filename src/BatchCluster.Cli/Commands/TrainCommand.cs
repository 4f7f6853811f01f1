using BatchCluster.Cli.Options;

namespace BatchCluster.Cli.Commands;

/// <summary><c>batchcluster train</c>: one run on the local simulated cluster or the plain loop.</summary>
public static class TrainCommand
{
    public static Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        var config = TrainOptions.Parse(new FlagSet(args, TrainOptions.Flags, "train"));
        var host = RunHost.Prepare(config);
        return host.RunAsync(config.Engine.ToString().ToLowerInvariant(), config.Workers,
            (events, onStep) => Engines.RunAsync(config, host.Data, host.Initial, events, host.LogPath, onStep, cancellation, host.ResumeFrom));
    }
}
