using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Configuration;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;

namespace BatchCluster.Cluster.Security;

/// <summary>
/// A node's TLS identity for a closed cluster (docs/security.md): its own certificate with private
/// key, and the one authority whose certificates it trusts. Both channels use it with mutual
/// authentication: Akka remoting (DotNetty's TLS, set up through <see cref="AkkaSetup"/>) and the
/// tensor data plane (<see cref="SslStream"/>). A peer is trusted exactly when its certificate
/// chains to <see cref="Authority"/> (only that root, never the machine's store), is within its
/// validity period and may be used for TLS; host names are not checked, because every node is
/// both server and client and nodes come and go by address.
/// </summary>
public sealed class ClusterTls : IDisposable
{
    private ClusterTls(X509Certificate2 certificate, X509Certificate2 authority)
    {
        Certificate = certificate;
        Authority = authority;
    }

    public X509Certificate2 Certificate { get; }
    public X509Certificate2 Authority { get; }

    /// <summary>What the node shows in its log: the certificate's subject, and the authority it trusts.</summary>
    public string Describe() => $"TLS as {Certificate.Subject}, trusting {Authority.Subject}";

    /// <summary>Loads a PKCS#12 file (certificate and private key) and the authority's PEM or DER certificate.</summary>
    /// <exception cref="TlsConfigurationException">A file is missing or unreadable, the password is wrong, or the key does not match.</exception>
    public static ClusterTls Load(string certificatePath, string? password, string authorityPath)
    {
        if (!File.Exists(certificatePath))
            throw new TlsConfigurationException($"--tls-cert: no file at {Path.GetFullPath(certificatePath)}; make one with scripts/make-test-certs.sh or your own authority");
        if (!File.Exists(authorityPath))
            throw new TlsConfigurationException($"--tls-ca: no file at {Path.GetFullPath(authorityPath)}; it is the authority's certificate (ca.crt)");
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password, X509KeyStorageFlags.Exportable);
        }
        catch (CryptographicException e)
        {
            throw new TlsConfigurationException($"--tls-cert {certificatePath} cannot be read ({e.Message.TrimEnd('.')}); is BATCHCLUSTER_TLS_PASSWORD its password?");
        }
        if (!certificate.HasPrivateKey)
            throw new TlsConfigurationException($"--tls-cert {certificatePath} holds no private key; export the node's key with its certificate (a .pfx)");
        X509Certificate2 authority;
        try
        {
            authority = X509CertificateLoader.LoadCertificateFromFile(authorityPath);
        }
        catch (CryptographicException e)
        {
            throw new TlsConfigurationException($"--tls-ca {authorityPath} is not a certificate ({e.Message.TrimEnd('.')})");
        }
        var tls = new ClusterTls(certificate, authority);
        if (!tls.Trusts(certificate, out string why))
            throw new TlsConfigurationException($"--tls-cert {certificatePath} is not trusted by --tls-ca {authorityPath}: {why}; peers would refuse this node");
        return tls;
    }

    /// <summary>Whether a peer's certificate chains to <see cref="Authority"/> and is valid now.</summary>
    public bool Trusts(X509Certificate? peer, out string why)
    {
        why = "";
        if (peer is null)
        {
            why = "no certificate";
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // a private authority publishes no revocation lists
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        var certificate = peer as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(peer.GetRawCertData());
        if (chain.Build(certificate)) return true;
        why = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).DefaultIfEmpty("untrusted chain"));
        return false;
    }

    /// <summary>The HOCON that turns TLS on for Akka remoting (the certificate itself comes from <see cref="AkkaSetup"/>).</summary>
    public static Config AkkaConfig { get; } = ConfigurationFactory.ParseString("""
        akka.remote.dot-netty.tcp.enable-ssl = on
        akka.remote.dot-netty.tcp.ssl.suppress-validation = off
        akka.remote.dot-netty.tcp.ssl.require-mutual-authentication = on
        akka.remote.dot-netty.tcp.ssl.validate-certificate-hostname = off
        """);

    /// <summary>DotNetty's TLS with this certificate, mutual authentication, and <see cref="Trusts"/> as the only judge of a peer.</summary>
    public DotNettySslSetup AkkaSetup() => new(Certificate, suppressValidation: false, requireMutualAuthentication: true,
        validateCertificateHostname: false, (peer, _, _, _, log) =>
        {
            if (Trusts(peer, out string why)) return true;
            log.Warning("Refused a TLS peer {0}: {1}", peer?.Subject ?? "without a certificate", why);
            return false;
        });

    private bool Validate(object sender, X509Certificate? peer, X509Chain? chain, SslPolicyErrors errors) => Trusts(peer, out _);

    /// <summary>The data plane's listening side: asks for the worker's certificate and checks it.</summary>
    public async Task<SslStream> AcceptAsync(Stream stream, CancellationToken cancellation)
    {
        var tls = new SslStream(stream, leaveInnerStreamOpen: false);
        await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificate = Certificate,
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = Validate,
            EnabledSslProtocols = SslProtocols.Tls13 | SslProtocols.Tls12,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        }, cancellation).ConfigureAwait(false);
        return tls;
    }

    /// <summary>The data plane's connecting side: shows this node's certificate and checks the coordinator's.</summary>
    public SslStream Connect(Stream stream, string host)
    {
        var tls = new SslStream(stream, leaveInnerStreamOpen: false);
        tls.AuthenticateAsClient(new SslClientAuthenticationOptions
        {
            TargetHost = host,
            ClientCertificates = [Certificate],
            RemoteCertificateValidationCallback = Validate,
            EnabledSslProtocols = SslProtocols.Tls13 | SslProtocols.Tls12,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        });
        return tls;
    }

    public void Dispose()
    {
        Certificate.Dispose();
        Authority.Dispose();
    }
}

/// <summary>The TLS settings cannot be used; the message says which file and what to do.</summary>
public sealed class TlsConfigurationException(string message) : Exception(message);
