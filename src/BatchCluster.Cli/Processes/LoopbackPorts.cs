namespace BatchCluster.Cli.Processes;

/// <summary>Ports for the child nodes a command starts on loopback.</summary>
public static class LoopbackPorts
{
    /// <summary>A TCP port free on 127.0.0.1 now (the kernel's choice; a child binds it moments later).</summary>
    public static int Free()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
