// The script's dry run publishes and trains on ILGPU's CPU accelerator; the kernel tests beside it on two cores would
// only slow both: one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
