#!/usr/bin/python3
"""One rank of PyTorch DistributedDataParallel training the same networks as BatchCluster (the
MLP 784-256-10, or the CNN), for `batchcluster bench links --ddp`: every rank computes its slice of
the global batch and DDP all-reduces the gradients over gloo (a ring), as a widely used reference.

    apt-get install -y python3-torch        # Debian 12: PyTorch 1.13, gloo included
    GLOO_SOCKET_IFNAME=eth0 /usr/bin/python3 scripts/pytorch-ddp.py --rank 0 --world 2 --master 198.18.0.1 --global-batch 1024

Inputs are random (a step's cost does not depend on the pixel values). Rank 0 prints one JSON line:
the median step time over the timed steps and the samples/s it means for the global batch."""
import argparse, json, statistics, time
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

parser = argparse.ArgumentParser()
parser.add_argument("--rank", type=int, required=True)
parser.add_argument("--world", type=int, required=True)
parser.add_argument("--master", required=True, help="address of rank 0")
parser.add_argument("--port", type=int, default=29500)
parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
parser.add_argument("--global-batch", type=int, default=1024)
parser.add_argument("--steps", type=int, default=12)
parser.add_argument("--warmup-steps", type=int, default=3)
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(1)
dist.init_process_group("gloo", init_method=f"tcp://{args.master}:{args.port}", rank=args.rank, world_size=args.world)


def network(name):
    if name == "mlp":
        return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    # BatchCluster's cnn: two 3x3 conv blocks (32, 64 channels) with ReLU and 2x2 max-pooling, then 128 and 10 units.
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


model = DistributedDataParallel(network(args.model))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = torch.nn.CrossEntropyLoss()
# This rank's slice of the global batch (the first ranks take one more when it does not divide).
local = args.global_batch // args.world + (1 if args.rank < args.global_batch % args.world else 0)
shape = (local, 784) if args.model == "mlp" else (local, 1, 28, 28)
x = torch.rand(shape)
y = torch.randint(0, 10, (local,))

times = []
for i in range(args.warmup_steps + args.steps):
    start = time.perf_counter()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()  # DDP all-reduces the gradient buckets here
    optimizer.step()
    loss.item()
    if i >= args.warmup_steps:
        times.append((time.perf_counter() - start) * 1000)
dist.barrier()
if args.rank == 0:
    step_ms = statistics.median(times)
    print(json.dumps({"step_ms": round(step_ms, 3), "samples_per_s": round(args.global_batch / step_ms * 1000), "torch": torch.__version__}))
dist.destroy_process_group()
