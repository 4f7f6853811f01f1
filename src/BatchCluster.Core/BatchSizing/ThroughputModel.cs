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
/// layout was seen before). Within a layout, each batch size seen keeps its last <see cref="Window"/> steps; the compute term
/// (the critical share's compute) is a line through the medians of the sizes seen, the rest of the step their median: the rest
/// does not grow with M, because what crosses a link per step is the model, not the batch. Medians, because a step now and then
/// takes several times its usual time (a collection, a scheduler hiccup on a busy machine) and a mean would carry it for long.
/// <para>The line needs two sizes. With one, it takes the shape (intercept to slope) of the last layout that had two, scaled to
/// this one's measurement; with none before, it goes through the origin: the reading that makes large batches look no cheaper
/// per sample than the one measured, which is what a first step away from it then tests (GoodputPlanner moves one octave at a
/// time). Measured: a share's compute is far from proportional at small shares — a worker slowed 16× took 12 ms for 4 samples
/// and 14 ms for 24 — so the intercept matters once it is known.</para>
/// </summary>
public sealed class ThroughputModel
{
    /// <summary>Steps kept per batch size.</summary>
    public const int Window = 15;
    /// <summary>Steps of a size needed before it counts in the fit.</summary>
    public const int MinimumSteps = 3;
    /// <summary>Steps of a new layout not used: the first steps after a start or a change carry JIT, allocation and connection costs.</summary>
    public const int WarmUpSteps = 3;

    private sealed class SizePoint
    {
        public readonly Queue<(double ComputeMs, double RestMs, double TransferMs)> Steps = new(Window);

        public void Add(double computeMs, double restMs, double transferMs)
        {
            if (Steps.Count == Window) Steps.Dequeue();
            Steps.Enqueue((computeMs, restMs, transferMs));
        }

        public double Median(Func<(double ComputeMs, double RestMs, double TransferMs), double> figure) =>
            Numerics.Statistics.Median(Steps.Select(figure));
    }

    private sealed class LayoutFit
    {
        public readonly SortedDictionary<int, SizePoint> BySize = [];
        public int Seen;
    }

    private readonly Dictionary<string, LayoutFit> _layouts = [];
    /// <summary>The layouts, the most recently used first.</summary>
    private readonly List<LayoutFit> _recent = [];
    private LayoutFit? _current;

    /// <summary>The layout of the last step observed ("" before any).</summary>
    public string Layout { get; private set; } = "";

    /// <summary>Whether the current layout has a size with enough steps to predict from.</summary>
    public bool Ready => _current is { } fit && fit.BySize.Values.Any(p => p.Steps.Count >= MinimumSteps);

    /// <param name="layout">Who computed the step (e.g. its workers' names, sorted and joined).</param>
    /// <param name="slowestComputeMs">The compute time of the share the step waited for.</param>
    public void Observe(string layout, int batch, double slowestComputeMs, double stepMs, double transferMs)
    {
        if (layout != Layout || _current is null)
        {
            Layout = layout;
            if (!_layouts.TryGetValue(layout, out _current)) _layouts[layout] = _current = new LayoutFit();
            _recent.Remove(_current);
            _recent.Insert(0, _current);
        }
        if (++_current.Seen <= WarmUpSteps) return;
        if (!(slowestComputeMs >= 0) || !(stepMs > 0) || !double.IsFinite(stepMs)) return;
        if (!_current.BySize.TryGetValue(batch, out var point)) _current.BySize[batch] = point = new SizePoint();
        point.Add(slowestComputeMs, Math.Max(0, stepMs - slowestComputeMs), transferMs);
    }

    /// <summary>The current layout's fitted terms; throws before <see cref="Ready"/>.</summary>
    public ThroughputTerms Terms
    {
        get
        {
            if (!Ready) throw new InvalidOperationException("the current layout has no batch size with enough steps yet");
            var (terms, sizes) = Fit(_current!);
            if (sizes >= 2) return terms;
            // One size in this layout: take the shape of the compute line (its intercept to slope) from the last layout that had
            // two, scaled to this layout's measurement. A worker joining or leaving changes the speeds more than the per-pass costs.
            foreach (var earlier in _recent)
            {
                if (earlier == _current) continue;
                var (shape, earlierSizes) = Fit(earlier);
                if (earlierSizes < 2 || shape.ComputeInterceptMs <= 0) continue;
                int size = _current!.BySize.Last(p => p.Value.Steps.Count >= MinimumSteps).Key;
                double scale = terms.ComputeMsPerSample * size / (shape.ComputeInterceptMs + shape.ComputeMsPerSample * size);
                return terms with { ComputeInterceptMs = shape.ComputeInterceptMs * scale, ComputeMsPerSample = shape.ComputeMsPerSample * scale };
            }
            return terms;
        }
    }

    /// <summary>A layout's terms and how many sizes they were fitted from (through the origin from one).</summary>
    private static (ThroughputTerms Terms, int Sizes) Fit(LayoutFit fit)
    {
        var points = fit.BySize.Where(p => p.Value.Steps.Count >= MinimumSteps)
            .Select(p => (Size: (double)p.Key, Compute: p.Value.Median(s => s.ComputeMs), Other: p.Value.Median(s => s.RestMs),
                Transfer: p.Value.Median(s => s.TransferMs))).ToList();
        if (points.Count == 0) return (default, 0);
        double slope = 0, intercept = -1;
        if (points.Count >= 2)
        {
            double meanM = points.Average(p => p.Size), meanC = points.Average(p => p.Compute);
            double variance = points.Sum(p => (p.Size - meanM) * (p.Size - meanM));
            slope = points.Sum(p => (p.Size - meanM) * (p.Compute - meanC)) / variance;
            intercept = meanC - slope * meanM;
        }
        int sizes = points.Count;
        if (!(slope > 0) || intercept < 0)
        {
            slope = points.Sum(p => p.Compute) / points.Sum(p => p.Size); // through the origin (see the remarks)
            intercept = 0;
            sizes = 1;
        }
        return (new ThroughputTerms(slope, intercept, points.Average(p => p.Other), points.Average(p => p.Transfer)), sizes);
    }
}
