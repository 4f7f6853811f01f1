using System.CommandLine;
using System.Security.Cryptography;
using BatchCluster.Cli.Options;
using BatchCluster.Cluster.Security;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster certs init DIR</c> and <c>certs add DIR NODE…</c>: a cluster's private authority and its nodes'
/// certificates for mutual TLS (docs/security.md), made with .NET's own CertificateRequest — no openssl needed. The
/// files are those of scripts/make-test-certs.sh: DIR/ca.crt, DIR/ca.key, DIR/NODE.pfx, the .pfx password from
/// BATCHCLUSTER_TLS_PASSWORD or, when it is unset, made up once and kept in DIR/password.
/// </summary>
public static class CertsCommand
{
    private static readonly Argument<string> Directory = new("DIR") { Description = "where the authority's and the nodes' files are" };
    private static readonly Argument<string[]> Nodes = new("NODE") { Description = "node names (each gets NODE.pfx)", Arity = ArgumentArity.OneOrMore };
    private static readonly Option<string[]?> Hosts = Opt.WordList("host", "IP addresses or DNS names the nodes are reached at, besides their names and loopback",
        h => h.Length > 0 && (System.Net.IPAddress.TryParse(h, out _) || Uri.CheckHostName(h) == UriHostNameType.Dns), "an IP address or host name", "H[,H…]");
    private static readonly Option<int?> Days = Opt.Int("days", "how long the certificates are valid [default: 365]", 1, 36_500);

    public static Command Create()
    {
        var init = new Command("init", "make a new authority in DIR (ca.crt for every node's --tls-ca; ca.key stays with you)") { Directory, Days };
        init.SetAction(r => Init(r.GetValue(Directory)!, r.GetValue(Days) ?? 365));
        var add = new Command("add", "issue certificates for NODEs from the authority in DIR (NODE.pfx for that node's --tls-cert)") { Directory, Nodes, Hosts, Days };
        add.SetAction(r => Add(r.GetValue(Directory)!, r.GetValue(Nodes)!, r.GetValue(Hosts) ?? [], r.GetValue(Days) ?? 365));
        return new Command("certs", "a private certificate authority and node certificates for mutual TLS (docs/security.md)") { init, add };
    }

    private static int Init(string directory, int days)
    {
        if (File.Exists(Path.Combine(directory, CertificateAuthority.KeyFile)))
            throw new UsageException($"{Path.GetFullPath(directory)} already holds an authority; add nodes with 'batchcluster certs add {directory} NODE', or choose another directory");
        using var authority = CertificateAuthority.Create($"BatchCluster CA {Path.GetFileName(Path.GetFullPath(directory))}", DateTimeOffset.UtcNow.AddDays(days));
        authority.Save(directory);
        Console.Out.WriteLine($"certs: authority in {Path.GetFullPath(directory)}: give every node --tls-ca {Path.Combine(directory, CertificateAuthority.CertificateFile)}; keep {CertificateAuthority.KeyFile} off the nodes");
        return 0;
    }

    private static int Add(string directory, string[] nodes, string[] hosts, int days)
    {
        foreach (string node in nodes)
            if (node.Length == 0 || node.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')) || node.Trim('.').Length == 0)
                throw new UsageException($"node name '{node}' may hold only letters, digits, '-', '.' and '_' (it names NODE.pfx and goes into the certificate)");
        CertificateAuthority authority;
        try { authority = CertificateAuthority.Load(directory); }
        catch (TlsConfigurationException e) { throw new UsageException(e.Message); }
        using (authority)
        {
            string password = Password(directory);
            foreach (string node in nodes)
            {
                string path = authority.Issue(directory, node, hosts, password, DateTimeOffset.UtcNow.AddDays(days));
                Console.Out.WriteLine($"certs: {node}: --tls-cert {path} --tls-ca {Path.Combine(directory, CertificateAuthority.CertificateFile)}");
            }
        }
        return 0;
    }

    /// <summary>The .pfx password: BATCHCLUSTER_TLS_PASSWORD, or DIR/password (made up once, readable by its owner only).</summary>
    private static string Password(string directory)
    {
        if (Environment.GetEnvironmentVariable("BATCHCLUSTER_TLS_PASSWORD") is { Length: > 0 } given) return given;
        string path = Path.Combine(directory, "password");
        if (!File.Exists(path))
        {
            File.WriteAllText(path, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)) + "\n");
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Console.Out.WriteLine($"certs: the .pfx password is in {path}: export BATCHCLUSTER_TLS_PASSWORD=$(cat {path}) on each node");
        }
        return File.ReadAllText(path).Trim();
    }
}
