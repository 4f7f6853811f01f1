// The containers share one Docker engine and two cores: one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
