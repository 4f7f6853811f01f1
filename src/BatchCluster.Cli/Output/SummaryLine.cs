using System.Text.Json;
using System.Text.Json.Serialization;
using BatchCluster.Core.Training;

namespace BatchCluster.Cli.Output;

/// <summary>The run summary as one JSON line (NaN is written as "NaN" rather than failing).</summary>
public static class SummaryLine
{
    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static string Format(RunSummary summary) => JsonSerializer.Serialize(summary, Options);
}
