namespace BatchCluster.Core.Optimizers;

internal static class OptimizerStates
{
    public static void Check(OptimizerState state, string name, int buffers, int length)
    {
        if (state.Name != name)
            throw new InvalidDataException($"optimizer state is for '{state.Name}', this run uses '{name}'");
        if (state.Buffers.Count != buffers || state.Buffers.Any(b => b.Length != length))
            throw new InvalidDataException($"optimizer state holds {state.Buffers.Count} buffers of the wrong size for '{name}' ({buffers} × {length} expected)");
    }
}
