namespace BatchCluster.Core.BatchSizing;

/// <summary>
/// What the planner concluded at a decision point: the batch to run next and the predictions behind it; <paramref name="BestOther"/>
/// is the allowed candidate other than the current batch with the most predicted goodput (0 when there is none).
/// </summary>
public sealed record BatchDecision(int Current, int Chosen, double CurrentGoodput, double ChosenGoodput, double NoiseScale, ThroughputTerms Terms,
    int BestOther = 0, double BestOtherGoodput = double.NaN)
{
    public bool Changed => Chosen != Current;
}

/// <summary>
/// Goodput = samples/s × statistical efficiency (Pollux): the M0-equivalent samples a second of training is worth at batch M. At
/// each decision point the planner evaluates geometrically spaced candidates in the range (and the current batch), and moves to
/// the best only when it beats the current one by <see cref="Hysteresis"/>, and not back to a batch it left within the last
/// <see cref="NoReturnWindows"/> decisions: the estimates are noisy, and a batch that flaps changes the run's meaning for nothing.
/// A decision moves at most <see cref="MaxStep"/>-fold: the throughput model extrapolates from the sizes it has seen (through the
/// origin from one), so each move is also the measurement that corrects the next.
/// </summary>
public sealed class GoodputPlanner
{
    /// <summary>The best candidate must predict at least this much more goodput than the current batch.</summary>
    public const double Hysteresis = 0.05;
    /// <summary>Candidates per doubling of the batch.</summary>
    public const int CandidatesPerOctave = 4;
    public const int NoReturnWindows = 3;
    /// <summary>The most a decision multiplies or divides the batch by.</summary>
    public const double MaxStep = 2;

    private readonly int _referenceBatch;
    private readonly double _maxGain;
    private readonly Queue<(long Decision, int Left)> _left = new();
    private long _decisions;

    /// <param name="granule">Every candidate is a multiple of it (the ghost batch under --bn-batch; else 1).</param>
    /// <param name="maxGain">The most the rate may rise over the base rate (--max-lr): a batch is worth no more than that rate makes of it.</param>
    public GoodputPlanner(int min, int max, int referenceBatch, int granule = 1, double maxGain = double.PositiveInfinity)
    {
        if (min < 1 || max < min) throw new ArgumentOutOfRangeException(nameof(min), $"batch range {min}:{max} is not 1 ≤ MIN ≤ MAX");
        if (granule < 1 || min % granule != 0) throw new ArgumentOutOfRangeException(nameof(granule), $"batch range {min}:{max} does not start at a multiple of {granule}");
        _referenceBatch = referenceBatch;
        _maxGain = maxGain;
        var candidates = new SortedSet<int>();
        for (int k = 0; ; k++)
        {
            double size = min * Math.Pow(2, (double)k / CandidatesPerOctave);
            if (size > max) break;
            candidates.Add((int)Math.Round(size / granule) * granule);
        }
        candidates.Add(max / granule * granule);
        Candidates = [.. candidates];
    }

    public IReadOnlyList<int> Candidates { get; }

    public double Goodput(ThroughputTerms terms, int batch, double noiseScale) =>
        terms.SamplesPerSecond(batch) * Efficiency.Statistical(batch, _referenceBatch, noiseScale, _maxGain);

    public BatchDecision Decide(int current, ThroughputTerms terms, double noiseScale)
    {
        long decision = ++_decisions;
        while (_left.Count > 0 && decision - _left.Peek().Decision > NoReturnWindows) _left.Dequeue();
        double currentGoodput = Goodput(terms, current, noiseScale);
        int best = 0;
        double bestGoodput = double.NegativeInfinity;
        foreach (int candidate in Candidates)
        {
            if (candidate == current || candidate > current * MaxStep || candidate * MaxStep < current) continue;
            double goodput = Goodput(terms, candidate, noiseScale);
            if (goodput > bestGoodput && !_left.Any(l => l.Left == candidate)) (best, bestGoodput) = (candidate, goodput);
        }
        if (best == 0) return new BatchDecision(current, current, currentGoodput, currentGoodput, noiseScale, terms);
        if (bestGoodput >= currentGoodput * (1 + Hysteresis))
        {
            _left.Enqueue((decision, current));
            return new BatchDecision(current, best, currentGoodput, bestGoodput, noiseScale, terms, best, bestGoodput);
        }
        return new BatchDecision(current, current, currentGoodput, currentGoodput, noiseScale, terms, best, bestGoodput);
    }
}
