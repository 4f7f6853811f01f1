namespace BatchCluster.Core.BatchSizing;

/// <summary>The fitted terms of a step's time at batch M: t(M) = FixedMs + ComputeInterceptMs + ComputeMsPerSample · M.</summary>
/// <param name="ComputeMsPerSample">Milliseconds the slowest share's compute grows per sample of the global batch (its share of it).</param>
/// <param name="ComputeInterceptMs">Milliseconds of the slowest share's compute that do not grow with M (per-pass costs), once two batch sizes were seen; 0 before.</param>
/// <param name="FixedMs">The rest of a step: hand-off, the links (they carry model-sized tensors, whatever M), waiting and the update.</param>
/// <param name="TransferMs">The part of the step the engine measured as transfer (in FixedMs already; shown as the link term).</param>
public readonly record struct ThroughputTerms(double ComputeMsPerSample, double ComputeInterceptMs, double FixedMs, double TransferMs)
{
    public double StepMs(int batch) => FixedMs + ComputeInterceptMs + ComputeMsPerSample * batch;

    public double SamplesPerSecond(int batch) => batch / StepMs(batch) * 1000;
}

/// <summary>
/// Samples/s of the current workers at any global batch, fitted online from the steps as they complete. Per layout (the set of
/// workers that computed the step's shares): when a worker joins or leaves, the fit of the new layout starts (or continues, if that
/// layout was seen before). Within a layout, each batch size seen keeps smoothed figures of its slowest share's compute and of the
/// rest of the step; the compute term is a line through them (through the origin while one size has been seen), the rest their mean:
/// the rest does not grow with M, because what crosses a link per step is the model, not the batch.
/// </summary>
public sealed class ThroughputModel
{
    /// <summary>Weight of a new step in the smoothed figures.</summary>
    private const double Smoothing = 0.2;
    /// <summary>Steps of a new layout not used: the first steps after a start or a change carry JIT, allocation and connection costs.</summary>
    public const int WarmUpSteps = 3;

    private sealed class SizePoint
    {
        public double ComputeMs, RestMs, TransferMs;
        public int Count;
    }

    private sealed class LayoutFit
    {
        public readonly SortedDictionary<int, SizePoint> BySize = [];
        public int Seen;
    }

    private readonly Dictionary<string, LayoutFit> _layouts = [];
    private LayoutFit? _current;

    /// <summary>The layout of the last step observed ("" before any).</summary>
    public string Layout { get; private set; } = "";

    /// <summary>Whether the current layout has enough steps to predict from.</summary>
    public bool Ready => _current is { } fit && fit.BySize.Count > 0;

    /// <param name="layout">Who computed the step (e.g. its workers' names, sorted and joined).</param>
    /// <param name="slowestComputeMs">The longest share compute of the step.</param>
    public void Observe(string layout, int batch, double slowestComputeMs, double stepMs, double transferMs)
    {
        if (layout != Layout || _current is null)
        {
            Layout = layout;
            if (!_layouts.TryGetValue(layout, out _current)) _layouts[layout] = _current = new LayoutFit();
        }
        if (++_current.Seen <= WarmUpSteps) return;
        if (!(slowestComputeMs >= 0) || !(stepMs > 0) || !double.IsFinite(stepMs)) return;
        double rest = Math.Max(0, stepMs - slowestComputeMs);
        if (!_current.BySize.TryGetValue(batch, out var point))
        {
            _current.BySize[batch] = new SizePoint { ComputeMs = slowestComputeMs, RestMs = rest, TransferMs = transferMs, Count = 1 };
            return;
        }
        point.ComputeMs += Smoothing * (slowestComputeMs - point.ComputeMs);
        point.RestMs += Smoothing * (rest - point.RestMs);
        point.TransferMs += Smoothing * (transferMs - point.TransferMs);
        point.Count++;
    }

    /// <summary>The current layout's fitted terms; throws before <see cref="Ready"/>.</summary>
    public ThroughputTerms Terms
    {
        get
        {
            var fit = _current is { BySize.Count: > 0 } f ? f : throw new InvalidOperationException("no step of the current layout observed yet");
            double weight = 0, rest = 0, transfer = 0, sumM = 0, sumC = 0, sumMM = 0, sumMC = 0;
            foreach (var (size, p) in fit.BySize)
            {
                weight += p.Count;
                rest += p.Count * p.RestMs;
                transfer += p.Count * p.TransferMs;
                sumM += size;
                sumC += p.ComputeMs;
                sumMM += (double)size * size;
                sumMC += size * p.ComputeMs;
            }
            int n = fit.BySize.Count;
            double slope = 0, intercept = -1;
            if (n >= 2)
            {
                double variance = sumMM - sumM * sumM / n;
                slope = variance > 0 ? (sumMC - sumM * sumC / n) / variance : 0;
                intercept = (sumC - slope * sumM) / n;
            }
            if (!(slope > 0) || intercept < 0)
            {
                slope = sumC / sumM; // through the origin: the conservative reading of one size (large batches cost in proportion)
                intercept = 0;
            }
            return new ThroughputTerms(slope, intercept, rest / weight, transfer / weight);
        }
    }
}
