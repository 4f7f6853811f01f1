using BatchCluster.Core.Models;
using BatchCluster.Gpu;

namespace BatchCluster.Cli.Options;

/// <summary>--device, checked before anything starts: the device opens here and runs the model, or one sentence says why not.</summary>
public static class DeviceOption
{
    /// <returns>The device's name as a worker registers it.</returns>
    /// <exception cref="UsageException">Not a device, not here, or not for this model.</exception>
    public static string Check(string device, ModelSpec? model)
    {
        try
        {
            return ComputeBackends.Check(device, model);
        }
        catch (ArgumentException e) // IlgpuDevice turns the driver's and ILGPU's failures into one sentence too
        {
            throw new UsageException(e.Message);
        }
    }
}
