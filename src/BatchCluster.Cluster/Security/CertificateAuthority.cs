using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace BatchCluster.Cluster.Security;

/// <summary>
/// A private certificate authority for one cluster, made with .NET's own <see cref="CertificateRequest"/> (no openssl):
/// a P-256 root with CA:TRUE, and node certificates it issues for both TLS server and client use (mutual TLS:
/// docs/security.md). On disk, in the layout every BatchCluster tool reads: DIR/ca.crt (PEM, for every node's
/// --tls-ca), DIR/ca.key (PEM, the authority's private key: keep it off the nodes), DIR/NODE.pfx (a node's
/// certificate and key, PKCS#12, password-protected: --tls-cert).
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    public const string CertificateFile = "ca.crt";
    public const string KeyFile = "ca.key";

    private readonly X509Certificate2 _certificate;

    private CertificateAuthority(X509Certificate2 certificate) => _certificate = certificate;

    /// <summary>The authority's certificate (with its private key).</summary>
    public X509Certificate2 Certificate => _certificate;

    /// <summary>A new authority named <paramref name="name"/>, valid from yesterday (clock skew) to <paramref name="notAfter"/>.</summary>
    public static CertificateAuthority Create(string name, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return new CertificateAuthority(request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), notAfter));
    }

    /// <summary>Writes ca.crt and ca.key into <paramref name="directory"/> (the key readable by its owner only).</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, CertificateFile), _certificate.ExportCertificatePem());
        string keyPath = Path.Combine(directory, KeyFile);
        File.WriteAllText(keyPath, _certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>The authority saved in <paramref name="directory"/>.</summary>
    /// <exception cref="TlsConfigurationException">No authority there, or its files do not match.</exception>
    public static CertificateAuthority Load(string directory)
    {
        string certificatePath = Path.Combine(directory, CertificateFile), keyPath = Path.Combine(directory, KeyFile);
        if (!File.Exists(certificatePath) || !File.Exists(keyPath))
            throw new TlsConfigurationException($"{Path.GetFullPath(directory)} holds no authority ({CertificateFile} and {KeyFile}); make one with 'batchcluster certs init {directory}'");
        try
        {
            return new CertificateAuthority(X509Certificate2.CreateFromPemFile(certificatePath, keyPath));
        }
        catch (CryptographicException e)
        {
            throw new TlsConfigurationException($"the authority in {Path.GetFullPath(directory)} cannot be read ({e.Message}); its {CertificateFile} and {KeyFile} must be a pair");
        }
    }

    /// <summary>
    /// Issues <paramref name="node"/>'s certificate, valid for its name, each of <paramref name="hosts"/> (IP addresses or
    /// DNS names) and loopback, and writes it with its new key to DIRECTORY/NODE.pfx under <paramref name="password"/>.
    /// </summary>
    /// <returns>The path of the .pfx file.</returns>
    public string Issue(string directory, string node, IEnumerable<string> hosts, string? password, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={node}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(node);
        names.AddIpAddress(IPAddress.Loopback);
        foreach (string host in hosts)
            if (IPAddress.TryParse(host, out var address)) names.AddIpAddress(address);
            else names.AddDnsName(host);
        request.CertificateExtensions.Add(names.Build());
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f; // a positive serial number
        var notAfterCapped = notAfter < _certificate.NotAfter ? notAfter : new DateTimeOffset(_certificate.NotAfter);
        using var issued = request.Create(_certificate, DateTimeOffset.UtcNow.AddDays(-1), notAfterCapped, serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        string path = Path.Combine(directory, $"{node}.pfx");
        File.WriteAllBytes(path, withKey.Export(X509ContentType.Pkcs12, password));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    public void Dispose() => _certificate.Dispose();
}
