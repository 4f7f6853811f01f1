namespace BatchCluster.Core.Planning;

/// <summary>
/// Splits a global batch into shares proportional to each worker's capacity (e.g. measured
/// samples/s). Largest-remainder apportionment, ties to the lower worker index, so the plan is
/// deterministic; every sample id goes to exactly one share, in order. Workers whose
/// apportionment is 0 get no share. With a granule (the ghost batch under --bn-batch) it apportions
/// whole runs of that many consecutive ids, so every share is made of whole ghost batches.
/// </summary>
public static class SharePlanner
{
    public static IReadOnlyList<WorkShare> Plan(ReadOnlySpan<int> sampleIds, IReadOnlyList<double> capacities, int granule = 1)
    {
        if (granule < 1 || sampleIds.Length % granule != 0)
            throw new ArgumentException($"{sampleIds.Length} ids are not whole units of {granule}", nameof(granule));
        if (capacities.Count == 0) throw new ArgumentException("cannot plan a step without workers", nameof(capacities));
        double total = 0;
        foreach (double c in capacities)
        {
            if (!(c > 0) || double.IsInfinity(c)) throw new ArgumentException($"worker capacity {c} must be positive and finite", nameof(capacities));
            total += c;
        }

        int n = sampleIds.Length / granule; // units to apportion
        var sizes = new int[capacities.Count];
        var remainders = new double[capacities.Count];
        int assigned = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            double quota = n * capacities[i] / total;
            sizes[i] = (int)Math.Floor(quota);
            remainders[i] = quota - sizes[i];
            assigned += sizes[i];
        }
        // Floating-point quotas may sum to slightly more or less than n; fix up by remainders.
        while (assigned > n)
        {
            int i = IndexOfMax(sizes.Select((s, k) => s > 0 ? -remainders[k] : double.NegativeInfinity).ToArray());
            sizes[i]--;
            assigned--;
        }
        while (assigned < n)
        {
            int i = IndexOfMax(remainders);
            sizes[i]++;
            remainders[i] = double.NegativeInfinity;
            assigned++;
            if (remainders.All(double.IsNegativeInfinity)) Array.Fill(remainders, 0.0);
        }

        var shares = new List<WorkShare>(sizes.Length);
        int offset = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            if (sizes[i] == 0) continue;
            int length = sizes[i] * granule;
            shares.Add(new WorkShare(i, sampleIds.Slice(offset, length).ToArray()));
            offset += length;
        }
        return shares;
    }

    /// <summary>Equal capacities: shares differ in size by at most one sample.</summary>
    public static IReadOnlyList<WorkShare> PlanEven(ReadOnlySpan<int> sampleIds, int workerCount) =>
        Plan(sampleIds, Enumerable.Repeat(1.0, workerCount).ToArray());

    private static int IndexOfMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
