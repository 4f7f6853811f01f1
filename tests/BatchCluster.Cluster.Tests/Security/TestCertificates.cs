using BatchCluster.Cluster.Security;

namespace BatchCluster.Cluster.Tests.Security;

/// <summary>
/// A throw-away certificate authority in a temporary directory, and node certificates it issues:
/// the production <see cref="CertificateAuthority"/> (what 'batchcluster certs' makes), so every TLS
/// test runs on the certificates users get.
/// </summary>
public sealed class TestCertificates : IDisposable
{
    public const string Password = "test-only-password";
    private readonly CertificateAuthority _authority;

    public TestCertificates(string name = "BatchCluster test CA")
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("bc-certs-").FullName;
        _authority = CertificateAuthority.Create(name, DateTimeOffset.UtcNow.AddYears(1));
        _authority.Save(Directory);
        AuthorityPath = Path.Combine(Directory, CertificateAuthority.CertificateFile);
    }

    public string Directory { get; }
    public string AuthorityPath { get; }

    /// <returns>The path of NODE.pfx: the node's certificate and key, protected by <see cref="Password"/>.</returns>
    public string Issue(string node, DateTimeOffset? notAfter = null) =>
        _authority.Issue(Directory, node, [], Password, notAfter ?? DateTimeOffset.UtcNow.AddMonths(6));

    /// <summary>A node's identity: its certificate from this authority, trusting this authority.</summary>
    public ClusterTls Node(string node) => ClusterTls.Load(Issue(node), Password, AuthorityPath);

    public void Dispose()
    {
        _authority.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
