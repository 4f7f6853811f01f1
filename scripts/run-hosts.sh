#!/usr/bin/env bash
# A multi-node cluster on simulated hosts: like run-cluster.sh, but every node runs in a network
# namespace of its own with its own address (198.18.0.0/24, the benchmarking range of RFC 2544), the
# hosts joined by a bridge in one more namespace, and each host's link optionally shaped with tbf (both
# directions) — what separate machines on a 1 or 10 Gbit/s network look like to the cluster. Traffic
# never leaves the namespaces made here. Needs root (ip netns, tc). Every namespace is removed on exit,
# Ctrl-C or failure; namespaces left by an earlier run that died are removed first.
#
#   scripts/run-hosts.sh --workers 2 [--rate 1gbit] [--worker-rates 1gbit,100mbit] [--worker-threads 1] [train flags…]
#
# The coordinator is 198.18.0.1 (Akka port 4053, data plane on a free port), worker k is 198.18.0.(k+1);
# --rate shapes every host's link, --worker-rates one rate per worker (the coordinator keeps --rate).
# Output lines carry the node's name; the coordinator's JSON summary line is printed last.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

workers=2
rate=""
worker_rates=""
worker_threads=1
port=4053
train_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=${2:?--workers needs a number}; shift 2 ;;
    --rate) rate=${2:?--rate needs a rate such as 1gbit or 100mbit}; shift 2 ;;
    --worker-rates) worker_rates=${2:?--worker-rates needs rates such as 1gbit,100mbit}; shift 2 ;;
    --worker-threads) worker_threads=${2:?--worker-threads needs a number}; shift 2 ;;
    *) train_flags+=("$1"); shift ;;
  esac
done
if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]] || [ "$workers" -gt 200 ]; then
  echo "run-hosts: --workers must be a whole number from 1 to 200, not '$workers'" >&2
  exit 2
fi
rate_pattern='^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$'
IFS=',' read -r -a per_worker <<< "$worker_rates"
for r in "$rate" "${per_worker[@]}"; do
  if [ -n "$r" ] && ! [[ "$r" =~ $rate_pattern ]]; then
    echo "run-hosts: '$r' is not a rate tc understands; use e.g. 10gbit, 1gbit, 100mbit" >&2
    exit 2
  fi
done
if [ -n "$worker_rates" ] && [ "${#per_worker[@]}" -ne "$workers" ]; then
  echo "run-hosts: --worker-rates gives ${#per_worker[@]} rates for $workers workers; give one per worker" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "run-hosts: simulated hosts need root (network namespaces and tc); run it as root, or use scripts/run-cluster.sh for nodes on loopback" >&2
  exit 2
fi
for tool in ip tc; do
  command -v "$tool" >/dev/null || { echo "run-hosts: '$tool' is missing; install iproute2 (apt-get install iproute2)" >&2; exit 2; }
done

"$root/scripts/batchcluster" --help >/dev/null   # builds the tool once, before any node starts
dll="$root/artifacts/cli/batchcluster.dll"

# Namespaces are named bch-<pid of this script>-<host>: those of a script that is no longer running are stale.
for ns in $(ip netns list | awk '/^bch-[0-9]+-/ {print $1}'); do
  owner=${ns#bch-}; owner=${owner%%-*}
  kill -0 "$owner" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done

id=$$
bridge_ns="bch-$id-br"
host_ns() { echo "bch-$id-h$1"; }            # host 0 is the coordinator
address() { echo "198.18.0.$(( $1 + 1 ))"; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for h in $(seq 0 "$workers"); do ip netns del "$(host_ns "$h")" 2>/dev/null || true; done
  ip netns del "$bridge_ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

shape() { # namespace, device, rate: a token bucket on the device's egress
  [ -z "$3" ] || ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$3" burst 1mb latency 50ms
}

ip netns add "$bridge_ns"
ip -n "$bridge_ns" link add br0 type bridge
ip -n "$bridge_ns" link set br0 up
for h in $(seq 0 "$workers"); do
  ns=$(host_ns "$h")
  link_rate=$rate
  [ "$h" -gt 0 ] && [ -n "$worker_rates" ] && link_rate=${per_worker[$((h - 1))]}
  ip netns add "$ns"
  ip link add "bch${id}h$h" type veth peer name "bch${id}b$h"
  ip link set "bch${id}h$h" netns "$ns"
  ip link set "bch${id}b$h" netns "$bridge_ns"
  ip -n "$ns" link set "bch${id}h$h" name eth0
  ip -n "$ns" addr add "$(address "$h")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$bridge_ns" link set "bch${id}b$h" master br0
  ip -n "$bridge_ns" link set "bch${id}b$h" up
  shape "$ns" eth0 "$link_rate"                 # host → network
  shape "$bridge_ns" "bch${id}b$h" "$link_rate" # network → host
  echo "run-hosts: host $h $(address "$h") in $ns${link_rate:+, link $link_rate}" >&2
done

source "$root/scripts/lib/nodes.sh"
coordinator_address=$(address 0)
start_node coordinator ip netns exec "$(host_ns 0)" dotnet "$dll" node --role coordinator --host "$coordinator_address" --port "$port" \
  --start-workers "$workers" "${train_flags[@]}"
coordinator=${pids[-1]}
for h in $(seq 1 "$workers"); do
  start_node "worker-$h" ip netns exec "$(host_ns "$h")" dotnet "$dll" node --role worker --host "$(address "$h")" \
    --seed-nodes "$coordinator_address:$port" --threads "$worker_threads" --join-timeout 60
done
finish_with_summary "$coordinator"
