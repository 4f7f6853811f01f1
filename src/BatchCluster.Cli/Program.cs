using System.CommandLine;
using BatchCluster.Cli.Commands;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Data;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli;

public static class Program
{
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
            Console.Error.WriteLine($"batchcluster: the run failed: {e.GetBaseException().Message}"
                                    + (Verbose ? "" : " (--verbose shows where; the event log has the details of a run)"));
            if (Verbose) Console.Error.WriteLine(e);
            return 1;
        }
    }

    /// <summary>
    /// Every command, declared with System.CommandLine: '--help' on any of them lists its flags with
    /// types, defaults and rules; a mistyped flag gets the nearest known ones as a suggestion; shells
    /// complete commands, flags and choices through the [suggest] directive (dotnet-suggest).
    /// </summary>
    private static readonly Option<bool> VerboseOption = new("--verbose")
    {
        Description = "print the stack trace of an unexpected error", Recursive = true, Arity = ArgumentArity.Zero,
    };

    /// <summary>Whether --verbose was given: an unexpected error then shows its stack trace.</summary>
    private static bool Verbose { get; set; }

    public static RootCommand CreateRoot()
    {
        var bench = new Command("bench", "benchmarks: overhead, transport, scale, links, flood, sizing, bn, metrics, noise (docs/performance.md, docs/robustness.md)")
        {
            BenchOverheadCommand.Create(), BenchTransportCommand.Create(), BenchScaleCommand.Create(), BenchLinksCommand.Create(), BenchFloodCommand.Create(), BenchSizingCommand.Create(), BenchBatchNormCommand.Create(), BenchMetricsCommand.Create(), BenchNoiseCommand.Create(), BenchTransportCommand.CreatePeer(),
        };
        return new RootCommand("BatchCluster: data-parallel training on Akka.NET, to test the effects of batch size across nodes")
        {
            TrainCommand.Create(), NodeCommand.Create(), SweepCommand.Create(), ProbeCommand.Create(), AnalyzeCommand.Create(), bench,
            ChaosCommand.Create(), SoakCommand.Create(), CertsCommand.Create(), VerboseOption,
        };
    }

    public static async Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        var result = CreateRoot().Parse(args);
        Verbose = result.GetValue(VerboseOption);
        if (result.Errors.Count > 0) throw new UsageException(CommandLineErrors.Describe(result));
        // Exceptions reach Main's handlers (one sentence each); signals belong to ShutdownSignals, not to the parser's own handler.
        var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
        return await result.InvokeAsync(invocation, cancellation);
    }
}
