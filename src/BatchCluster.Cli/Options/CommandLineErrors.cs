using System.CommandLine;
using System.CommandLine.Parsing;

namespace BatchCluster.Cli.Options;

/// <summary>
/// Turns System.CommandLine's parse errors into our one-sentence form (docs/errors.md): what was
/// wrong and how to fix it, naming the command; an unknown flag gets the closest known ones as a
/// suggestion. Errors from the options' own rules (<see cref="Opt"/>) are already in that form.
/// </summary>
public static class CommandLineErrors
{
    public static string Describe(ParseResult result)
    {
        var command = result.CommandResult.Command;
        string name = CommandPath(result.CommandResult);
        if (result.UnmatchedTokens.Count > 0)
        {
            string token = result.UnmatchedTokens[0];
            if (command is RootCommand)
                return $"unknown command '{token}'; commands: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}";
            if (command.Subcommands.Count > 0 && command.Action is null)
                return $"unknown {name} command '{token}'; one of: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}";
            if (token.StartsWith('-'))
                return $"unknown flag {token} for '{name}'{Suggestion(token, command)} (see 'batchcluster {name} --help')";
            return $"unexpected argument '{token}' for '{name}': flags look like --name value (see 'batchcluster {name} --help')";
        }
        // A command's own rule (e.g. which flags a role takes) comes first: it explains the flag errors that follow from it.
        var error = result.Errors.FirstOrDefault(e => e.SymbolResult is CommandResult { Command.Action: not null }) ?? result.Errors[0];
        if (error.SymbolResult is OptionResult option)
        {
            if (option.Tokens.Count == 0 && option.Option.Arity.MinimumNumberOfValues > 0) return $"flag {option.Option.Name} needs a value";
            if (option.Tokens.Count > 1 && option.Option.Arity.MaximumNumberOfValues == 1) return $"flag {option.Option.Name} is given twice; give it once";
        }
        if (command.Subcommands.Count > 0 && command.Action is null)
            return command is RootCommand
                ? $"a command is needed: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))} (see 'batchcluster --help')"
                : $"{name} needs one of: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}";
        return error.Message.TrimEnd('.');
    }

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c && c.Command is not RootCommand; r = r.Parent) names.Insert(0, c.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>"; did you mean --x?" for the known flags closest to a mistyped one (edit distance), or nothing.</summary>
    private static string Suggestion(string token, Command command)
    {
        string typed = token.Split('=', 2)[0];
        var close = command.Options.Where(o => !o.Hidden && o.Name.StartsWith("--", StringComparison.Ordinal))
            .Select(o => (o.Name, Distance: Distance(typed, o.Name)))
            .Where(c => c.Distance <= Math.Max(2, typed.Length / 3))
            .OrderBy(c => c.Distance).ThenBy(c => c.Name, StringComparer.Ordinal).Take(2).Select(c => c.Name).ToList();
        return close.Count == 0 ? "" : $"; did you mean {string.Join(" or ", close)}?";
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
