namespace BatchCluster.EndToEnd.Tests.Hosts;

/// <summary>
/// The node commands of the README's "Several machines" instructions, read from the README itself,
/// so that a test runs what a user is told to run (a README that drifts breaks the test).
/// </summary>
public static class ReadmeCommands
{
    /// <param name="Certificates">The block's <c>certs</c> commands, in order (the authority, then the nodes' certificates).</param>
    public sealed record SeveralMachines(string[] Coordinator, string[] Worker, IReadOnlyList<string[]> Certificates, string Text);

    public static SeveralMachines Read()
    {
        string readme = File.ReadAllText(Path.Combine(CliProcess.RepositoryRoot(), "README.md"));
        int section = readme.IndexOf("**Several machines**", StringComparison.Ordinal);
        if (section < 0) throw new InvalidOperationException("README.md has no \"**Several machines**\" instructions");
        int blockStart = readme.IndexOf("```sh", section, StringComparison.Ordinal);
        int blockEnd = readme.IndexOf("```", blockStart + 5, StringComparison.Ordinal);
        int next = readme.IndexOf("\n**", blockEnd, StringComparison.Ordinal);
        string text = readme[section..(next < 0 ? readme.Length : next)];
        // One line may chain commands with &&.
        var commands = readme[(blockStart + 5)..blockEnd].Split('\n')
            .SelectMany(l => l.Split(" && ", StringSplitOptions.TrimEntries))
            .Where(l => l.StartsWith("scripts/batchcluster ", StringComparison.Ordinal))
            .Select(l => l["scripts/batchcluster ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .ToList();
        string[] Role(string role) => commands.SingleOrDefault(c => c.Take(3).SequenceEqual(["node", "--role", role]))
            ?? throw new InvalidOperationException($"README.md's \"Several machines\" block has no `scripts/batchcluster node --role {role}` line");
        return new SeveralMachines(Role("coordinator"), Role("worker"), commands.Where(c => c[0] == "certs").ToList(), text);
    }

    /// <summary>The value given to <paramref name="flag"/> in <paramref name="command"/>.</summary>
    public static string Value(string[] command, string flag)
    {
        int at = Array.IndexOf(command, flag);
        if (at < 0 || at + 1 >= command.Length) throw new InvalidOperationException($"the README command has no {flag} VALUE: {string.Join(' ', command)}");
        return command[at + 1];
    }

    /// <summary>The command without the given flags and their values.</summary>
    public static string[] Without(string[] command, params string[] flags)
    {
        var kept = new List<string>();
        for (int i = 0; i < command.Length; i++)
        {
            if (flags.Contains(command[i])) { i++; continue; }
            kept.Add(command[i]);
        }
        return kept.ToArray();
    }

    /// <summary>The command with every README address replaced by the simulated host's.</summary>
    public static string[] At(string[] command, IReadOnlyDictionary<string, string> addresses) =>
        command.Select(a => addresses.Aggregate(a, (s, pair) => s.Replace(pair.Key, pair.Value, StringComparison.Ordinal))).ToArray();
}
