#!/usr/bin/env bash
# The multi-node batch-size sweep on simulated hosts (docs/experiments.md, "Across nodes"): for each
# seed, number of worker hosts and global batch, one scripts/run-hosts.sh run of the MLP on
# Fashion-MNIST with SGD + momentum, lr 0.05 at batch 256 scaled linearly with one epoch of linear
# warm-up, validated ten times an epoch. "auto" in --global-batch adds a run that chooses its batch in 32:4096 by goodput with
# AdaScale (docs/adaptive-batch.md; --auto-scaling linear: by the linear rule, run ids ending -linear-s<seed>): its warm-up is an
# epoch of scale-invariant iterations at batch 256, and it is validated every 21 steps (a tenth of an epoch at 256). Runs that already completed in --runs-dir are kept, so an
# interrupted sweep continues where it stopped. Needs root (run-hosts.sh).
#
#   scripts/sweep-hosts.sh [--rate 1gbit] [--hosts 1,2,4] [--global-batch 64,128,…,4096,auto] [--seeds 1,2]
#                          [--epochs 4] [--runs-dir runs/across-nodes] [--adapt-every K] [--auto-scaling adascale|linear|…]
#                          [run-hosts or train flags…]
#
# Run ids: nodes-<rate>-h<hosts>-b<batch>-s<seed>, or nodes-<rate>-ring-h<hosts>-b<batch>-s<seed> with
# --reduce ring (so that both topologies can share a runs directory and one report). Analyse with
#   scripts/batchcluster analyze <runs-dir> --out <dir> --target-accuracy 0.85
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

rate=1gbit
hosts=1,2,4
batches=64,128,256,512,1024,2048,4096
seeds=1,2
epochs=4
runs_dir=runs/across-nodes
adapt_every=()
auto_scaling=adascale
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=${2:?--rate needs a rate such as 1gbit}; shift 2 ;;
    --hosts) hosts=${2:?--hosts needs counts such as 1,2,4}; shift 2 ;;
    --global-batch) batches=${2:?--global-batch needs sizes such as 64,256}; shift 2 ;;
    --seeds) seeds=${2:?--seeds needs seeds such as 1,2}; shift 2 ;;
    --epochs) epochs=${2:?--epochs needs a number}; shift 2 ;;
    --runs-dir) runs_dir=${2:?--runs-dir needs a folder}; shift 2 ;;
    --adapt-every) adapt_every=(--adapt-every "${2:?--adapt-every needs a step count}"); shift 2 ;;   # the auto runs' only
    --auto-scaling) auto_scaling=${2:?--auto-scaling needs an LR scaling rule}; shift 2 ;;                # the auto runs' LR rule
    *) extra+=("$1"); shift ;;
  esac
done
[[ "$batches" =~ ^([1-9][0-9]*|auto)(,([1-9][0-9]*|auto))*$ ]] || { echo "sweep-hosts: '$batches' is not a comma-separated list of whole numbers or auto" >&2; exit 2; }
for list in "$hosts" "$seeds" "$epochs"; do
  [[ "$list" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "sweep-hosts: '$list' is not a comma-separated list of whole numbers" >&2; exit 2; }
done

topology=""
for ((i = 0; i < ${#extra[@]}; i++)); do
  if [ "${extra[i]}" = "--reduce" ] && [ "${extra[i + 1]:-}" = "ring" ]; then topology="-ring"; fi
done

mkdir -p "$runs_dir"
train_samples=55000   # Fashion-MNIST's 60,000 training images less the 5,000 held out for validation
done_runs=0
for seed in ${seeds//,/ }; do
  for n in ${hosts//,/ }; do
    for b in ${batches//,/ }; do
      id="nodes-$rate$topology-h$n-b$b-s$seed"
      if [ "$b" = auto ] && [ "$auto_scaling" != adascale ]; then id="nodes-$rate$topology-h$n-b$b-$auto_scaling-s$seed"; fi
      if grep -qs '"EventType":"RunCompleted"' "$runs_dir/$id/events.clef"; then
        echo "sweep-hosts: $id already completed" >&2
        continue
      fi
      rm -rf "${runs_dir:?}/$id"
      if [ "$b" = auto ]; then
        batch_flags=(--global-batch auto --batch-range 32:4096 --lr-scaling "$auto_scaling" "${adapt_every[@]}"); steps_per_epoch=$((train_samples / 256))
      else
        batch_flags=(--global-batch "$b" --lr-scaling linear); steps_per_epoch=$((train_samples / b))
      fi
      eval_every=$((steps_per_epoch / 10)); [ "$eval_every" -ge 1 ] || eval_every=1
      echo "sweep-hosts: $id" >&2
      output="$runs_dir/$id.nodes.log"   # every node's output, kept only when the run fails
      if ! "$root/scripts/run-hosts.sh" --workers "$n" --rate "$rate" --run-id "$id" --runs-dir "$runs_dir" --seed "$seed" \
        "${batch_flags[@]}" --optimizer momentum --lr 0.05 --base-batch 256 --warmup-steps "$steps_per_epoch" \
        --epochs "$epochs" --eval-every "$eval_every" "${extra[@]}" >"$output" 2>&1; then
        echo "sweep-hosts: $id failed; its nodes' output is in $output" >&2
        exit 1
      fi
      tail -n 1 "$output"
      rm -f "$output"
      done_runs=$((done_runs + 1))
    done
  done
done
echo "sweep-hosts: $done_runs runs made in $runs_dir; analyse with scripts/batchcluster analyze $runs_dir --out DIR --target-accuracy 0.85" >&2
