using System.Globalization;

namespace BatchCluster.Analysis.Summary;

/// <summary>How the report writes numbers for people (tables, findings, captions): invariant culture, "–" where nothing was measured.</summary>
public static class Show
{
    /// <summary>A fraction as a percentage with two decimals ("87.54 %").</summary>
    public static string Percent(double fraction) =>
        double.IsFinite(fraction) ? (100 * fraction).ToString("F2", CultureInfo.InvariantCulture) + " %" : "–";

    /// <summary>A number in a .NET format ("N0": 12,345; "F1": 3.2).</summary>
    public static string Number(double value, string format = "N0") =>
        double.IsFinite(value) ? value.ToString(format, CultureInfo.InvariantCulture) : "–";
}
