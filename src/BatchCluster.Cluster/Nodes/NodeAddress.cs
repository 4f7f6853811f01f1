using System.Globalization;

namespace BatchCluster.Cluster.Nodes;

/// <summary>A node's host and port, as given on the command line ("HOST:PORT").</summary>
public sealed record NodeAddress(string Host, int Port)
{
    public static NodeAddress Parse(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new FormatException($"'{text}' is not HOST:PORT with a port from 1 to 65535 (e.g. 127.0.0.1:4053)");
        return new NodeAddress(text[..colon], port);
    }

    public override string ToString() => $"{Host}:{Port}";
}
