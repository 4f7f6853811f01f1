using System.Globalization;
using BatchCluster.Core.BatchSizing;

namespace BatchCluster.Cli.Options;

/// <summary>The text forms of the batch flags: --global-batch B|auto, --batch-range MIN:MAX, --batch-schedule STEP:B,… (each wrong form gets one sentence).</summary>
public static class BatchFlags
{
    /// <summary>The range --global-batch auto searches when --batch-range is not given.</summary>
    public const int DefaultMin = 32, DefaultMax = 4096;

    /// <summary>A number (the fixed batch) or null for "auto".</summary>
    public static int? GlobalBatch(string text)
    {
        if (text == "auto") return null;
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int batch) && batch >= 1) return batch;
        throw new UsageException($"--global-batch takes a whole number of samples of at least 1, or 'auto' (the run chooses it), not '{text}'");
    }

    public static (int Min, int Max) Range(string text)
    {
        string[] parts = text.Split(':');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int min)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int max) && min >= 1 && max >= min)
            return (min, max);
        throw new UsageException($"--batch-range takes MIN:MAX with 1 ≤ MIN ≤ MAX (e.g. 32:4096), not '{text}'");
    }

    public static BatchChange[] Schedule(string text)
    {
        var changes = new List<BatchChange>();
        foreach (string entry in text.Split(','))
        {
            string[] parts = entry.Split(':');
            if (parts.Length != 2 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long step)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int batch) || batch < 1)
                throw new UsageException($"--batch-schedule takes STEP:B[,STEP:B…] (from step STEP on, B samples per step), not '{entry}' in '{text}'");
            if (changes.Count > 0 && step <= changes[^1].Step)
                throw new UsageException($"--batch-schedule: its steps must rise, but {step} follows {changes[^1].Step} in '{text}'");
            changes.Add(new BatchChange(step, batch));
        }
        return [.. changes];
    }
}
