using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace BatchCluster.Cli.Options;

/// <summary>
/// Makes System.CommandLine options the way every command declares them: once, with the value's
/// type, its default (shown in --help), its help text and its rule. A value that breaks the rule is
/// a parse error in one sentence naming the flag, the rule and the value
/// (<c>--steps must be a whole number from 1 to …, not 'x'</c>); <see cref="CommandLineErrors"/>
/// prints it. Options without a default read as null when absent, so commands can tell "not given".
/// </summary>
public static class Opt
{
    private static string Flag(string name) => "--" + name;

    private static string? Single(ArgumentResult result) => result.Tokens.Count == 0 ? null : result.Tokens[^1].Value;

    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/>; null when absent.</summary>
    public static Option<int?> Int(string name, string help, int min, int max = int.MaxValue, string helpName = "N") =>
        new(Flag(name))
        {
            Description = help,
            HelpName = helpName,
            CustomParser = r =>
            {
                string? text = Single(r);
                if (text is not null && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max)
                    return value;
                r.AddError($"{Flag(name)} must be a whole number from {min} to {max}, not '{text}'");
                return null;
            },
        };

    public static Option<long?> Long(string name, string help, long min, long max = long.MaxValue, string helpName = "N") =>
        new(Flag(name))
        {
            Description = help,
            HelpName = helpName,
            CustomParser = r =>
            {
                string? text = Single(r);
                if (text is not null && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) && value >= min && value <= max)
                    return value;
                r.AddError($"{Flag(name)} must be a whole number from {min} to {max}, not '{text}'");
                return null;
            },
        };

    /// <summary>A finite number with <paramref name="min"/> ≤ value (or &lt; when exclusive) ≤ <paramref name="max"/>.</summary>
    public static Option<double?> Number(string name, string help, double min, double max = double.MaxValue, bool minExclusive = false, string helpName = "X") =>
        new(Flag(name))
        {
            Description = help,
            HelpName = helpName,
            CustomParser = r =>
            {
                string? text = Single(r);
                if (text is not null && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
                    && (minExclusive ? value > min : value >= min) && value <= max)
                    return value;
                string lower = minExclusive ? $"greater than {min.ToString(CultureInfo.InvariantCulture)}" : $"at least {min.ToString(CultureInfo.InvariantCulture)}";
                string upper = max < double.MaxValue ? $" and at most {max.ToString(CultureInfo.InvariantCulture)}" : "";
                r.AddError($"{Flag(name)} must be a number {lower}{upper}, not '{text}'");
                return null;
            },
        };

    /// <summary>One of <paramref name="allowed"/> (tab completion offers them); <paramref name="fallback"/> when absent.</summary>
    public static Option<string> Choice(string name, string help, string fallback, params string[] allowed)
    {
        var option = new Option<string>(Flag(name))
        {
            Description = help,
            HelpName = string.Join('|', allowed),
            DefaultValueFactory = _ => fallback,
            CustomParser = r =>
            {
                string? text = Single(r);
                if (text is not null && allowed.Contains(text, StringComparer.Ordinal)) return text;
                r.AddError($"{Flag(name)} must be one of {string.Join('|', allowed)}, not '{text}'");
                return fallback;
            },
        };
        option.CompletionSources.Add(allowed);
        return option;
    }

    /// <summary>true|false; null when absent. (A string option: System.CommandLine's bool options would not take a wrong word as their value.)</summary>
    public static Option<string?> Bool(string name, string help)
    {
        var option = new Option<string?>(Flag(name))
        {
            Description = help,
            HelpName = "true|false",
            CustomParser = r =>
            {
                string? text = Single(r);
                if (text is "true" or "false") return text;
                r.AddError($"{Flag(name)} must be one of true|false, not '{text}'");
                return null;
            },
        };
        option.CompletionSources.Add("true", "false");
        return option;
    }

    /// <summary>The value of a <see cref="Bool"/> option: true, false, or null when absent.</summary>
    public static bool? AsBool(string? value) => value is null ? null : value == "true";

    /// <summary>A flag without a value: present means true.</summary>
    public static Option<bool> Switch(string name, string help) => new(Flag(name)) { Description = help, Arity = ArgumentArity.Zero };

    /// <summary>Free text (a path, an id); null when absent.</summary>
    public static Option<string?> Text(string name, string help, string helpName) => new(Flag(name)) { Description = help, HelpName = helpName };

    /// <summary>A comma-separated list of whole numbers, each from <paramref name="min"/> to <paramref name="max"/>; null when absent.</summary>
    public static Option<int[]?> IntList(string name, string help, int min, int max = int.MaxValue, string helpName = "N[,N…]") =>
        new(Flag(name))
        {
            Description = help,
            HelpName = helpName,
            CustomParser = r =>
            {
                string text = Single(r) ?? "";
                var parts = text.Split(',', StringSplitOptions.TrimEntries);
                var values = new int[parts.Length];
                for (int i = 0; i < parts.Length; i++)
                {
                    if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out values[i]) || values[i] < min || values[i] > max)
                    {
                        r.AddError(max == int.MaxValue
                            ? $"{Flag(name)} must be a comma-separated list of whole numbers of at least {min} (e.g. 256,128), not '{text}'"
                            : $"{Flag(name)} must be a comma-separated list of whole numbers from {min} to {max} (e.g. 256,128), not '{text}'");
                        return null;
                    }
                }
                return values;
            },
        };

    /// <summary>A comma-separated list of words, each accepted by <paramref name="valid"/> (<paramref name="expected"/> says what is); null when absent.</summary>
    public static Option<string[]?> WordList(string name, string help, Func<string, bool> valid, string expected, string helpName = "W[,W…]") =>
        new(Flag(name))
        {
            Description = help,
            HelpName = helpName,
            CustomParser = r =>
            {
                string text = Single(r) ?? "";
                var words = text.Split(',', StringSplitOptions.TrimEntries);
                if (words.All(valid)) return words;
                r.AddError($"{Flag(name)} must be a comma-separated list of {expected}, not '{text}'");
                return null;
            },
        };

    /// <summary>An <see cref="IntList"/> option's numbers, or null when it was not given (System.CommandLine reads an absent array as an empty one).</summary>
    public static int[]? List(this ParseResult result, Option<int[]?> option) => result.Given(option) ? result.GetValue(option) : null;

    /// <summary>A <see cref="WordList"/> option's words, or null when it was not given.</summary>
    public static string[]? List(this ParseResult result, Option<string[]?> option) => result.Given(option) ? result.GetValue(option) : null;

    /// <summary>Whether the option was given on the command line (not merely defaulted).</summary>
    public static bool Given(this ParseResult result, Option option) => result.GetResult(option) is { Implicit: false };
}
