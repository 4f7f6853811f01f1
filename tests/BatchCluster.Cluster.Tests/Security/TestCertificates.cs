using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using BatchCluster.Cluster.Security;

namespace BatchCluster.Cluster.Tests.Security;

/// <summary>
/// A throw-away certificate authority in a temporary directory, and node certificates it issues
/// (the same shapes scripts/make-test-certs.sh makes with openssl: P-256 keys, a CA:TRUE root,
/// nodes for both TLS server and client use).
/// </summary>
public sealed class TestCertificates : IDisposable
{
    public const string Password = "test-only-password";
    private readonly X509Certificate2 _authority;

    public TestCertificates(string name = "BatchCluster test CA")
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("bc-certs-").FullName;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        _authority = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        AuthorityPath = Path.Combine(Directory, "ca.crt");
        File.WriteAllText(AuthorityPath, _authority.ExportCertificatePem());
    }

    public string Directory { get; }
    public string AuthorityPath { get; }

    /// <returns>The path of NODE.pfx: the node's certificate and key, protected by <see cref="Password"/>.</returns>
    public string Issue(string node, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={node}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(node);
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var issued = request.Create(_authority, DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddMonths(6), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        string path = Path.Combine(Directory, $"{node}.pfx");
        File.WriteAllBytes(path, withKey.Export(X509ContentType.Pkcs12, Password));
        return path;
    }

    /// <summary>A node's identity: its certificate from this authority, trusting this authority.</summary>
    public ClusterTls Node(string node) => ClusterTls.Load(Issue(node), Password, AuthorityPath);

    public void Dispose()
    {
        _authority.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
