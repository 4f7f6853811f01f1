#!/usr/bin/env bash
# The GPU check: is the ILGPU backend right on an NVIDIA GPU, does it train, do powers of two run faster there?
#   scripts/gpu-check.sh [--dry-run] [--publish-only] [--out DIR]
# 1. Publishes the check (src/BatchCluster.GpuCheck) self-contained for linux-x64 into artifacts/gpu-check/,
#    with Fashion-MNIST beside it in artifacts/gpu-check/data/: no SDK and no network needed where it runs,
#    under 64 MiB in all. Skipped where there is no .NET SDK and the folder is already there (a GPU machine
#    that was given the folder).
# 2. On a machine with an NVIDIA GPU (/dev/nvidia0) runs it on --device cuda: the backend against ILGPU's CPU
#    accelerator (≤ 1e-5), 2 epochs of Fashion-MNIST (validation ≥ 0.83), a probe over 31/32/33 … 4095/4096/4097;
#    the output goes to DIR/gpu-check.txt (default docs/results/gpu/). Under 5 minutes on an H100/H200.
#    --dry-run runs a small version on ILGPU's CPU accelerator instead (what CI does; about a minute).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
folder="$root/artifacts/gpu-check"
out="$root/docs/results/gpu"
dry_run=0 publish_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1; shift ;;
    --publish-only) publish_only=1; shift ;;
    --out) [ $# -ge 2 ] || { echo "gpu-check: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    *) echo "gpu-check: unknown option '$1'; the options are --dry-run, --publish-only and --out DIR" >&2; exit 2 ;;
  esac
done
limit=$((64 * 1024 * 1024))

if command -v dotnet >/dev/null 2>&1; then
  data="${BATCHCLUSTER_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
  if [ ! -f "$data/train-images-idx3-ubyte.gz" ] && [ ! -f "$data/train-images-idx3-ubyte" ]; then
    "$root/scripts/install-prerequisites.sh"
  fi
  echo "gpu-check: publishing the check into $folder ..." >&2
  rm -rf "$folder"
  # Trimmed (partial: framework code it never calls) and compressed into one file: ~17 MB instead of ~70.
  dotnet publish "$root/src/BatchCluster.GpuCheck/BatchCluster.GpuCheck.csproj" -c Release -r linux-x64 --self-contained \
    -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:PublishTrimmed=true -p:TrimMode=partial \
    -p:SuppressTrimAnalysisWarnings=true -p:DebugType=none -o "$folder" -nologo -v quiet >&2
  mkdir -p "$folder/data"
  cp "$data"/*-ubyte* "$folder/data/"
  size=$(du -sb "$folder" | cut -f1)
  echo "gpu-check: $folder holds $((size / 1024 / 1024)) MiB (tool and data)" >&2
  if [ "$size" -gt "$limit" ]; then
    echo "gpu-check: $folder is over 64 MiB; it would not travel to a lent GPU machine" >&2
    exit 1
  fi
elif [ ! -x "$folder/batchcluster-gpu-check" ]; then
  echo "gpu-check: no .NET SDK here and no published check in $folder; run scripts/gpu-check.sh --publish-only where the SDK is and bring $folder" >&2
  exit 1
fi
[ "$publish_only" -eq 1 ] && exit 0

cd "$folder"
if [ "$dry_run" -eq 1 ]; then
  exec ./batchcluster-gpu-check --device ilgpu-cpu --data-dir data --epochs 1 --train-samples 512 --eval-samples 256 --share-samples 8 \
    --repeats 3 --batch-sizes 31,32,33
fi
if [ ! -e /dev/nvidia0 ]; then
  echo "gpu-check: no NVIDIA GPU here (no /dev/nvidia0); bring $folder to a machine with one and run scripts/gpu-check.sh there, or --dry-run here" >&2
  exit 1
fi
mkdir -p "$out"
./batchcluster-gpu-check --device cuda --data-dir data | tee "$out/gpu-check.txt"
