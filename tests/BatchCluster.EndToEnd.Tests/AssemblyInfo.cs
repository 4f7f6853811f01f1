// Each test starts real CLI processes; one at a time keeps them from fighting over 2 cores.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
