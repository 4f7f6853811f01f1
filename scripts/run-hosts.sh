#!/usr/bin/env bash
# A multi-node cluster on simulated hosts: like run-cluster.sh, but every node runs in a network
# namespace of its own with its own address (198.18.0.0/24, the benchmarking range of RFC 2544), the
# hosts joined by a bridge in one more namespace, and each host's link optionally shaped with tbf (both
# directions) — what separate machines on a 1 or 10 Gbit/s network look like to the cluster. Traffic
# never leaves the namespaces made here. Needs root (ip netns, tc). Every namespace is removed on exit,
# Ctrl-C or failure; namespaces left by an earlier run that died are removed first.
#
#   scripts/run-hosts.sh --workers 2 [--rate 1gbit] [--worker-rates 1gbit,100mbit] [--worker-threads 1]
#                        [--slow-last-worker F] [train flags…]
#
# The coordinator is 198.18.0.1 (Akka port 4053, data plane on a free port), worker k is 198.18.0.(k+1);
# --rate shapes every host's link, --worker-rates one rate per worker (the coordinator keeps --rate);
# --slow-last-worker F runs the last worker at 1/F of its speed (--testing-slowdown: a slower machine).
# Output lines carry the node's name; the coordinator's JSON summary line is printed last. The nodes
# run scripts/batchcluster's build, or the build BATCHCLUSTER_DLL names (the tests use their own).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

workers=2
rate=""
worker_rates=""
worker_threads=1
slow_last=""
port=4053
train_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=${2:?--workers needs a number}; shift 2 ;;
    --rate) rate=${2:?--rate needs a rate such as 1gbit or 100mbit}; shift 2 ;;
    --worker-rates) worker_rates=${2:?--worker-rates needs rates such as 1gbit,100mbit}; shift 2 ;;
    --worker-threads) worker_threads=${2:?--worker-threads needs a number}; shift 2 ;;
    --slow-last-worker) slow_last=${2:?--slow-last-worker needs a factor such as 3}; shift 2 ;;
    *) train_flags+=("$1"); shift ;;
  esac
done
if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]] || [ "$workers" -gt 199 ]; then
  echo "run-hosts: --workers must be a whole number from 1 to 199, not '$workers'" >&2
  exit 2
fi
# One rate per host for sim-hosts.sh: the coordinator keeps --rate, each worker its own or --rate.
host_rates=$rate
if [ -n "$worker_rates" ]; then
  IFS=',' read -r -a per_worker <<< "$worker_rates"
  if [ "${#per_worker[@]}" -ne "$workers" ]; then
    echo "run-hosts: --worker-rates gives ${#per_worker[@]} rates for $workers workers; give one per worker" >&2
    exit 2
  fi
  host_rates="$rate,$worker_rates"
else
  for _ in $(seq 1 "$workers"); do host_rates+=",$rate"; done
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/scripts/sim-hosts.sh" down --owner $$ || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Host 0 is the coordinator, host k worker k; sim-hosts.sh prints "<index> <address> <namespace>".
"$root/scripts/sim-hosts.sh" up --owner $$ --hosts $((workers + 1)) --rates "$host_rates" > "$tmp/hosts"
addresses=(); namespaces=()
while read -r h address ns; do
  addresses[h]=$address; namespaces[h]=$ns
  link=$(cut -d, -f$((h + 1)) <<< "$host_rates")
  echo "run-hosts: host $h $address in $ns${link:+, link $link}" >&2
done < "$tmp/hosts"
dll=${BATCHCLUSTER_DLL:-}   # a build of the tool to run instead (the tests run the one built beside them)
if [ -z "$dll" ]; then
  "$root/scripts/batchcluster" --help >/dev/null   # builds the tool once, before any node starts
  dll="$root/artifacts/cli/batchcluster.dll"
fi

source "$root/scripts/lib/nodes.sh"
coordinator_address=${addresses[0]}
# The simulated hosts are network namespaces of this machine, reachable from it alone: the nodes run without TLS
# (--insecure). Across real machines, give every node --tls-cert and --tls-ca (README, "Several machines").
start_node coordinator ip netns exec "${namespaces[0]}" dotnet "$dll" node --role coordinator --host "$coordinator_address" --insecure --port "$port" \
  --start-workers "$workers" "${train_flags[@]}"
coordinator=${pids[-1]}
for h in $(seq 1 "$workers"); do
  slow=()
  [ "$h" -eq "$workers" ] && [ -n "$slow_last" ] && slow=(--testing-slowdown "$slow_last")
  start_node "worker-$h" ip netns exec "${namespaces[h]}" dotnet "$dll" node --role worker --host "${addresses[h]}" --insecure \
    --seed-nodes "$coordinator_address:$port" --threads "$worker_threads" --join-timeout 60 "${slow[@]}"
done
finish_with_summary "$coordinator"
