using System.Globalization;

namespace BatchCluster.Cli.Options;

/// <summary>
/// Parses <c>--name value</c> pairs (also <c>--name=value</c>) against a fixed list of known flags,
/// and reads them as typed values with errors that name the flag and the allowed values.
/// </summary>
public sealed class FlagSet
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    /// <summary>Flags that take no value (their presence means true).</summary>
    public static readonly string[] Switches = ["resume", "standby", "akka-transport"];

    /// <param name="allowPositionals">Whether arguments that are not flags (e.g. paths) are allowed; they land in <see cref="Positionals"/>.</param>
    public FlagSet(IEnumerable<string> args, IReadOnlyCollection<string> knownFlags, string command, bool allowPositionals = false)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string arg = list[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) && allowPositionals)
            {
                Positionals.Add(arg);
                continue;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal))
                throw new UsageException($"unexpected argument '{arg}' for '{command}': flags look like --name value (see 'batchcluster {command} --help')");
            string name, value;
            int equals = arg.IndexOf('=');
            if (equals > 0)
            {
                name = arg[2..equals];
                value = arg[(equals + 1)..];
            }
            else if (Switches.Contains(arg[2..]))
            {
                name = arg[2..];
                value = "true";
            }
            else
            {
                name = arg[2..];
                if (i + 1 >= list.Count || list[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new UsageException($"flag --{name} needs a value");
                value = list[++i];
            }
            if (!knownFlags.Contains(name))
                throw new UsageException($"unknown flag --{name} for '{command}'; known flags: {string.Join(", ", knownFlags.Order().Select(f => "--" + f))}");
            if (!_values.TryAdd(name, value))
                throw new UsageException($"flag --{name} is given twice; give it once");
        }
    }

    private FlagSet(Dictionary<string, string> values) => _values = values;

    /// <summary>A copy without <paramref name="names"/>: for handing the rest of a command's flags to another parser.</summary>
    public FlagSet Except(IEnumerable<string> names)
    {
        var removed = names.ToHashSet(StringComparer.Ordinal);
        return new FlagSet(_values.Where(kv => !removed.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal));
    }

    /// <summary>The arguments that are not flags, in order (only when allowed).</summary>
    public List<string> Positionals { get; } = [];

    public bool Has(string name) => _values.ContainsKey(name);

    public string? String(string name) => _values.GetValueOrDefault(name);

    public string String(string name, string fallback) => _values.GetValueOrDefault(name) ?? fallback;

    public string Choice(string name, string fallback, params string[] allowed)
    {
        string value = String(name, fallback);
        if (!allowed.Contains(value, StringComparer.Ordinal))
            throw new UsageException($"--{name} must be one of {string.Join("|", allowed)}, not '{value}'");
        return value;
    }

    public bool Bool(string name, bool fallback) =>
        Has(name) ? Choice(name, "", "true", "false") == "true" : fallback;

    public int? Int(string name, int min, int max = int.MaxValue)
    {
        if (String(name) is not string text) return null;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            throw new UsageException($"--{name} must be a whole number from {min} to {max}, not '{text}'");
        return value;
    }

    public long? Long(string name, long min, long max = long.MaxValue)
    {
        if (String(name) is not string text) return null;
        if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) || value < min || value > max)
            throw new UsageException($"--{name} must be a whole number from {min} to {max}, not '{text}'");
        return value;
    }

    /// <summary>A finite number with <paramref name="min"/> ≤ value (or &lt; when exclusive) ≤ <paramref name="max"/>.</summary>
    public double? Double(string name, double min, double max = double.MaxValue, bool minExclusive = false)
    {
        if (String(name) is not string text) return null;
        bool ok = double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
                  && (minExclusive ? value > min : value >= min) && value <= max;
        if (!ok)
        {
            string lower = minExclusive ? $"greater than {min.ToString(CultureInfo.InvariantCulture)}" : $"at least {min.ToString(CultureInfo.InvariantCulture)}";
            string upper = max < double.MaxValue ? $" and at most {max.ToString(CultureInfo.InvariantCulture)}" : "";
            throw new UsageException($"--{name} must be a number {lower}{upper}, not '{text}'");
        }
        return value;
    }

    /// <summary>A comma-separated list of whole numbers, each from <paramref name="min"/> to <paramref name="max"/>.</summary>
    public int[]? IntList(string name, int min, int max = int.MaxValue)
    {
        if (String(name) is not string text) return null;
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out values[i]) || values[i] < min || values[i] > max)
                throw new UsageException(max == int.MaxValue
                    ? $"--{name} must be a comma-separated list of whole numbers of at least {min} (e.g. 256,128), not '{text}'"
                    : $"--{name} must be a comma-separated list of whole numbers from {min} to {max} (e.g. 256,128), not '{text}'");
        }
        return values;
    }
}
