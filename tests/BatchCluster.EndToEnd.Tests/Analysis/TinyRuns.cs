using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests.Analysis;

/// <summary>
/// Two tiny real runs on Fashion-MNIST (2 workers, global batch 32 and 128, 40 steps, validation at
/// step 20 and at the end), trained once by the CLI for all analysis tests.
/// </summary>
public sealed class TinyRuns : IDisposable
{
    public const int Steps = 40;
    public static readonly int[] GlobalBatches = [32, 128];

    public string RunsDir { get; } = Directory.CreateTempSubdirectory("tiny-runs-").FullName;

    /// <summary>The summary line each run printed, by run id.</summary>
    public Dictionary<string, JsonElement> Summaries { get; } = [];

    public TinyRuns()
    {
        foreach (int batch in GlobalBatches)
        {
            string runId = $"tiny-b{batch}";
            var outcome = CliProcess.Run("train", "--runs-dir", RunsDir, "--run-id", runId, "--workers", "2", "--global-batch", batch.ToString(),
                "--steps", Steps.ToString(), "--eval-every", "20", "--train-eval-samples", "1000", "--lr", "0.1", "--threads", "1");
            if (outcome.ExitCode != 0) throw new InvalidOperationException($"the tiny run {runId} failed: {outcome.StdErr}");
            Summaries[runId] = JsonDocument.Parse(outcome.LastLine).RootElement.Clone();
        }
    }

    public string LogOf(string runId) => Path.Combine(RunsDir, runId, "events.clef");

    public void Dispose() => Directory.Delete(RunsDir, recursive: true);
}

[CollectionDefinition(Name)]
public sealed class TinyRunsCollection : ICollectionFixture<TinyRuns>
{
    public const string Name = "tiny runs";
}
