#!/usr/bin/env bash
# A multi-node cluster on this machine: one coordinator process and N worker processes on
# loopback, each a real cluster node talking over TCP. Output is streamed with a prefix per node;
# the coordinator's JSON summary line is printed last. Every child is stopped on exit or Ctrl-C.
#
#   scripts/run-cluster.sh --workers 3 [--port 4053] [--worker-threads 1] [train flags…]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

workers=3
port=4053
worker_threads=1
train_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=${2:?--workers needs a number}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --worker-threads) worker_threads=${2:?--worker-threads needs a number}; shift 2 ;;
    *) train_flags+=("$1"); shift ;;
  esac
done
if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then
  echo "run-cluster: --workers must be a positive whole number, not '$workers'" >&2
  exit 2
fi

"$root/scripts/batchcluster" --help >/dev/null   # builds the tool once, before any node starts
dll="$root/artifacts/cli/batchcluster.dll"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each node's output gets a prefix; the coordinator's summary line comes last (scripts/lib/nodes.sh).
source "$root/scripts/lib/nodes.sh"
start_node coordinator dotnet "$dll" node --role coordinator --port "$port" --start-workers "$workers" "${train_flags[@]}"
coordinator=${pids[-1]}
for i in $(seq 1 "$workers"); do
  start_node "worker-$i" dotnet "$dll" node --role worker --seed-nodes "127.0.0.1:$port" --threads "$worker_threads"
done
finish_with_summary "$coordinator"
