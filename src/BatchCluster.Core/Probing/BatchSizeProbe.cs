using System.Diagnostics;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Optimizers;

namespace BatchCluster.Core.Probing;

/// <summary>Timings of one batch size: the spread of the repeats, throughput and resident memory.</summary>
public sealed record ProbeResult(int BatchSize, int Repeats, double MedianMs, double P10Ms, double P90Ms, double SamplesPerSecond, long ResidentBytes);

/// <summary>
/// How long one training step (forward, backward, gradient copy, SGD update and parameter load:
/// what a worker and the coordinator do per step on one node) takes per batch size on this node.
/// Each size gets warm-up steps first, then <c>repeats</c> timed steps; batch sizes are visited
/// in interleaved rounds so that a slow phase of a shared machine hits all sizes alike.
/// Resident memory is the process's working set right after the size's timed steps.
/// </summary>
public static class BatchSizeProbe
{
    public static readonly int[] DefaultBatchSizes = [31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000];

    /// <param name="createReplica">The compute backend (null: TorchSharp on the CPU).</param>
    /// <param name="parameters">Where the model stands (null: TorchSharp's initialisation, seed 1; a tool without libtorch gives its own).</param>
    public static IReadOnlyList<ProbeResult> Measure(ModelSpec model, ImageDataSet data, IReadOnlyList<int> batchSizes, int repeats, int warmup = 3, int rounds = 3,
        Func<ModelSpec, IModelReplica>? createReplica = null, float[]? parameters = null)
    {
        if (batchSizes.Any(b => b <= 0 || b > data.Count))
            throw new ArgumentOutOfRangeException(nameof(batchSizes), $"batch sizes must be from 1 to the {data.Count} training samples");
        using var replica = createReplica?.Invoke(model) ?? new ModelReplica(model);
        parameters = parameters is null ? ModelFactory.InitialParameters(model, seed: 1) : (float[])parameters.Clone();
        replica.LoadParameters(parameters);
        var gradient = new float[replica.ParameterCount];
        var optimizer = new Sgd(0f);
        var ids = Enumerable.Range(0, data.Count).ToArray();
        var timings = batchSizes.Distinct().ToDictionary(b => b, _ => new List<double>());
        var memory = new Dictionary<int, long>();
        int perRound = Math.Max(1, (repeats + rounds - 1) / rounds);

        void Step(int batch, int offset)
        {
            var share = ids.AsSpan(offset % (data.Count - batch + 1), batch);
            replica.ComputeGradientSum(data, share, batch, gradient);
            optimizer.Step(parameters, gradient, 1e-6f / batch); // tiny: the model stays where it is
            replica.LoadParameters(parameters);
        }

        foreach (int batch in timings.Keys)
            for (int i = 0; i < warmup; i++) Step(batch, i * batch);
        for (int round = 0; round < rounds; round++)
        {
            foreach (var (batch, times) in timings)
            {
                for (int i = 0; i < perRound && times.Count < repeats; i++)
                {
                    var clock = Stopwatch.StartNew();
                    Step(batch, (round * perRound + i) * batch);
                    times.Add(clock.Elapsed.TotalMilliseconds);
                }
                memory[batch] = Process.GetCurrentProcess().WorkingSet64;
            }
        }
        return timings.Select(t =>
        {
            var sorted = t.Value.Order().ToArray();
            double median = Quantile(sorted, 0.5);
            return new ProbeResult(t.Key, sorted.Length, median, Quantile(sorted, 0.1), Quantile(sorted, 0.9), t.Key / (median / 1000.0), memory[t.Key]);
        }).OrderBy(r => r.BatchSize).ToList();
    }

    private static double Quantile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int low = (int)Math.Floor(position);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}
