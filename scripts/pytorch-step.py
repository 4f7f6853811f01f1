#!/usr/bin/python3
"""The MLP's training step (forward, summed cross-entropy, backward, SGD update) in PyTorch, for
comparison with `batchcluster probe --threads 1` (docs/performance.md, "The worker's step").

    apt-get install -y python3-torch        # Debian 12: PyTorch 1.13 with OpenBLAS
    /usr/bin/python3 scripts/pytorch-step.py --threads 1 --batch-sizes 512,1024

Prints the median and quartiles of the step time per batch size; random inputs (the step's
cost does not depend on the pixel values)."""
import argparse, statistics, time
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--batch-sizes", default="512,1024")
parser.add_argument("--repeats", type=int, default=200)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
print(f"PyTorch {torch.__version__}, {args.threads} thread(s), BLAS: {torch.__config__.show().count('BLAS_INFO=') and torch.__config__.show().split('BLAS_INFO=')[1].split(',')[0]}")
print("| batch | step ms (median) | p25 – p75 |")
print("| ---: | ---: | ---: |")
for batch in [int(b) for b in args.batch_sizes.split(",")]:
    x = torch.rand(batch, 784)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(args.repeats + 20):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()
        if i >= 20:
            times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=4)
    print(f"| {batch} | {statistics.median(times):.2f} | {q[0]:.2f} – {q[2]:.2f} |")
