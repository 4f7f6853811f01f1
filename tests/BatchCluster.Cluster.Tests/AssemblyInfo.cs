// libtorch's thread count is process-wide and bitwise determinism depends on it: these tests run
// one at a time, each with the thread count it sets.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
