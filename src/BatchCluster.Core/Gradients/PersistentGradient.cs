using BatchCluster.Core.Numerics;

namespace BatchCluster.Core.Gradients;

/// <summary>What a checkpoint keeps of <see cref="PersistentGradient"/>: the open window (its gradient sum, steps, noise, progress) and the smoothed signal.</summary>
public sealed record PersistentGradientState(float[] WindowSum, int Steps, double Noise, double Progress, double EmaSignal, double Weight, long Window);

/// <summary>
/// The squared norm of the part of the gradient that persists (docs/adaptive-batch.md, "The signal that persists"): the step
/// gradients g_t of a window are summed, and at its end ‖mean G‖² is estimated without bias as
/// (‖Σ g_t‖² − Σ tr Σ / M_t) / W² — the window's independent batches add their noise tr Σ / M_t to the squared norm of the sum,
/// which the run's tr Σ estimate takes out again. Most of the gradient at one iterate is an oscillation across the sharpest
/// directions that the next steps undo; its noise scale tr Σ / ‖G‖² (B_simple) is then an order of magnitude below the batch
/// at which more samples stop paying, and the mean over the optimizer's memory is what makes progress.
/// <para>A window spans a fixed amount of progress, <see cref="WindowProgress"/> steps at the reference batch (τ, the
/// scale-invariant iterations: AdaScale's gains), not a fixed number of steps: at a larger batch and rate the same number of
/// steps travels further, the gradient turns more within the window and the signal reads smaller, which would make the batch
/// grow without end (a prototype with the momentum buffer did: 256 → 3,444 in 300 steps). Measured in τ, a larger batch's
/// window holds fewer steps and the estimate does not grow with the batch that it chooses. Windows are never shorter than
/// two steps, so an oscillation of period two cancels.</para>
/// <para>A window reads a random sample of the model's blocks (<see cref="WindowBlocks"/>): ‖Σ_t g_t‖² is estimated without bias
/// from the read blocks' squared norms, each weighted by the inverse of its chance to be read, at about a sixth of the cost.</para>
/// Plain code, owned by the session's thread; its window sum is the only model-sized buffer of the estimate (only read blocks are written).
/// </summary>
public sealed class PersistentGradient
{
    private readonly float[] _sum;
    private readonly WindowBlocks _blocks;
    private long _window;       // windows closed or discarded: the draw of the current one
    private int _steps;
    private double _noise;     // Σ tr Σ / M_t over the window's steps
    private double _progress;  // τ advanced in the window
    private double _emaSignal;
    private double _weight;    // bias correction of the smoothed signal, as in GradientNoiseScale

    /// <param name="parameterCount">The model's size.</param>
    /// <param name="windowProgress">The window's length in steps at the reference batch (τ), &gt; 0.</param>
    /// <param name="tensorSizes">The model's tensors in the flat order (null: one tensor): large ones are sampled by block.</param>
    /// <param name="seed">The run's seed: which blocks a window reads.</param>
    public PersistentGradient(int parameterCount, double windowProgress, IReadOnlyList<int>? tensorSizes = null, long seed = 0)
    {
        if (!(windowProgress > 0)) throw new ArgumentOutOfRangeException(nameof(windowProgress), "a window spans more than 0 reference steps");
        _sum = new float[parameterCount];
        _blocks = new WindowBlocks(parameterCount, tensorSizes ?? [parameterCount], seed);
        WindowProgress = windowProgress;
    }

    /// <summary>
    /// Smoothing of the windows' estimates, per window: they span about four windows (40 reference steps of progress by default).
    /// Per window, not per sample, because a window already spans a fixed progress and its estimate is about as noisy at any
    /// batch; smoothing per sample (as the step estimates are, ~100 · M0 samples) kept the early windows' large values in the
    /// average for hundreds of steps while the signal fell ~50-fold (0.7 to 0.015 over the first hundred steps of the one-host
    /// experiment), and at 4,096 samples left two-step windows nearly unsmoothed, so that AdaScale's gain swung 2.5-fold within
    /// ten steps.
    /// </summary>
    public const double SmoothingPerWindow = 0.75;
    public const int MinimumSteps = 2;

    public double WindowProgress { get; }

    /// <summary>The smoothed ‖mean G‖² of the windows (bias-corrected); NaN before the first window closed.</summary>
    public double SmoothedSignal => _weight > 0 ? _emaSignal / _weight : double.NaN;

    /// <summary>
    /// Adds <paramref name="scale"/> · <paramref name="values"/> to the window's gradient sum at <paramref name="offset"/>, where the
    /// window reads (a block of the mean as the coordinator averages it, or a ring's range of gradient sums, scale 1/B).
    /// </summary>
    public void Add(int offset, ReadOnlySpan<float> values, float scale)
    {
        int end = offset + values.Length;
        for (int block = offset / WindowBlocks.BlockFloats; block * WindowBlocks.BlockFloats < end; block++)
        {
            if (!_blocks.Reads(block)) continue;
            int from = Math.Max(offset, block * WindowBlocks.BlockFloats), to = Math.Min(end, (block + 1) * WindowBlocks.BlockFloats);
            var target = _sum.AsSpan(from, to - from);
            var source = values.Slice(from - offset, to - from);
            if (scale == 1f) FlatMath.AddInPlace(target, source);
            else FlatMath.MultiplyAddInPlace(target, source, scale);
        }
    }

    /// <summary>
    /// The step whose gradient was added is applied: it counts in the window with its batch, the progress it made (its gain, in τ)
    /// and the run's tr Σ. When the window has made <see cref="WindowProgress"/> (and holds two steps or more) it closes: its
    /// estimate enters the smoothed signal and a new window begins. Returns the closed window's estimate, or null.
    /// </summary>
    public double? StepDone(int batch, double progress, double traceSigma)
    {
        _steps++;
        _progress += progress;
        _noise += double.IsFinite(traceSigma) ? Math.Max(0, traceSigma) / batch : double.NaN;
        if (_progress < WindowProgress || _steps < MinimumSteps) return null;
        double sumSquared = 0;
        for (int block = 0; block < _blocks.Count; block++)
            if (_blocks.Reads(block)) sumSquared += _blocks.WeightOf(block) * FlatMath.SquaredNorm(BlockOf(block));
        double estimate = (sumSquared - _noise) / ((double)_steps * _steps);
        DiscardWindow(); // the next one starts, on blocks of its own
        _blocks.Draw(++_window);
        if (!double.IsFinite(estimate)) return null; // no tr Σ yet: this window cannot be corrected for its noise
        _emaSignal = SmoothingPerWindow * _emaSignal + (1 - SmoothingPerWindow) * estimate;
        _weight = SmoothingPerWindow * _weight + (1 - SmoothingPerWindow);
        return estimate;
    }

    /// <summary>Forgets the open window (its sum holds a step that was not applied: a non-finite mean, added as it was averaged); the smoothed signal stays.</summary>
    public void DiscardWindow()
    {
        for (int block = 0; block < _blocks.Count; block++)
            if (_blocks.Reads(block)) BlockOf(block).Clear();
        (_steps, _noise, _progress) = (0, 0, 0);
    }

    private Span<float> BlockOf(int block)
    {
        int start = block * WindowBlocks.BlockFloats;
        return _sum.AsSpan(start, Math.Min(WindowBlocks.BlockFloats, _sum.Length - start));
    }

    /// <summary>Blocks the current window reads, of <see cref="WindowBlocks.Count"/>.</summary>
    public int BlocksRead => _blocks.ReadCount;

    public PersistentGradientState State => new((float[])_sum.Clone(), _steps, _noise, _progress, _emaSignal, _weight, _window);

    public void Restore(PersistentGradientState state)
    {
        if (state.WindowSum.Length != _sum.Length)
            throw new ArgumentException($"a persistent-gradient window of {state.WindowSum.Length} values for a model of {_sum.Length}");
        state.WindowSum.CopyTo(_sum, 0);
        (_steps, _noise, _progress, _emaSignal, _weight, _window) = (state.Steps, state.Noise, state.Progress, state.EmaSignal, state.Weight, state.Window);
        _blocks.Draw(_window);
    }

    /// <summary>The window sum's range [offset, offset + length), which a ring commit that may be rolled back backs up.</summary>
    public Span<float> Range(int offset, int length) => _sum.AsSpan(offset, length);
}
