using BatchCluster.Cli.Commands;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli;

public static class Program
{
    private const string Usage = """
        usage: batchcluster <command> [flags]
          train            one training run (local simulated cluster or the plain loop); 'train --help' lists the flags
          node             a node of a multi-node cluster ('node --help')
          probe            step time and throughput per batch size on this node ('probe --help')
          sweep            a grid of runs over batch size, workers, micro-batch, LR scaling, then the report ('sweep --help')
          analyze          tables, plots and an HTML report from event logs ('analyze --help')
          bench overhead   samples/s of the plain loop vs the local cluster and real processes (coordinator + workers)
          bench transport  tensors between two processes: Akka.Remote vs the data plane vs raw TCP
          bench scale      the coordinator's cost per worker node (1…16 worker nodes in one process, tiny model)
          chaos            worker processes killed and stopped at random during a run; checks nothing was lost ('chaos --help')
          soak             a long multi-process run; memory and step time must not grow ('soak --help')
        """;

    public static async Task<int> Main(string[] args)
    {
        using var signals = new ShutdownSignals();
        try
        {
            return await RunAsync(args, signals.Token);
        }
        catch (Exception e) when (e is UsageException or DataSetException or InvalidDataException or DirectoryNotFoundException)
        {
            Console.Error.WriteLine($"batchcluster: {e.Message}");
            return 2;
        }
        catch (RunEndedElsewhereException e)
        {
            Console.Error.WriteLine($"batchcluster: {e.Message}");
            return 0;
        }
        catch (CommandFailedException e)
        {
            Console.Error.WriteLine($"batchcluster: {e.Message}");
            return 3;
        }
        catch (RunInterruptedException e)
        {
            Console.Error.WriteLine($"batchcluster: {e.Message} ({signals.Received ?? "stop requested"})");
            return signals.ExitCode;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"batchcluster: stopped ({signals.Received ?? "cancelled"})");
            return signals.ExitCode;
        }
        catch (RunFailedException e)
        {
            // A decision with its reason, not a crash: one clear paragraph, no stack trace (it is in the event log).
            Console.Error.WriteLine($"batchcluster: the run failed: {e.Message}");
            return 1;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"batchcluster: the run failed: {e.GetBaseException().Message}");
            Console.Error.WriteLine(e);
            return 1;
        }
    }

    public static Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            Console.Out.Write(Usage);
            return Task.FromResult(args.Length == 0 ? 2 : 0);
        }
        string[] rest = args[1..];
        if (rest.Contains("--help"))
        {
            Console.Out.Write(args[0] switch { "train" => TrainOptions.Help, "node" => NodeCommand.Help, "probe" => ProbeCommand.Help, "analyze" => AnalyzeCommand.Help, "sweep" => SweepCommand.Help, "chaos" => ChaosCommand.Help, "soak" => SoakCommand.Help, _ => Usage });
            return Task.FromResult(0);
        }
        return args[0] switch
        {
            "train" => TrainCommand.RunAsync(rest, cancellation),
            "node" => NodeCommand.RunAsync(rest, cancellation),
            "probe" => ProbeCommand.RunAsync(rest),
            "analyze" => AnalyzeCommand.RunAsync(rest),
            "sweep" => SweepCommand.RunAsync(rest, cancellation),
            "chaos" => ChaosCommand.RunAsync(rest, cancellation),
            "soak" => SoakCommand.RunAsync(rest, cancellation),
            "bench" when rest.Length > 0 && rest[0] == "overhead" => BenchOverheadCommand.RunAsync(rest[1..], cancellation),
            "bench" when rest.Length > 0 && rest[0] == "transport" => BenchTransportCommand.RunAsync(rest[1..], cancellation),
            "bench" when rest.Length > 0 && rest[0] == "transport-peer" => BenchTransportCommand.RunPeerAsync(rest[1..]),
            "bench" when rest.Length > 0 && rest[0] == "scale" => BenchScaleCommand.RunAsync(rest[1..], cancellation),
            "bench" => throw new UsageException("bench needs a benchmark name: overhead, transport, scale"),
            _ => throw new UsageException($"unknown command '{args[0]}'; commands: train, node, sweep, probe, analyze, bench, chaos, soak"),
        };
    }
}
