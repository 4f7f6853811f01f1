#!/usr/bin/env bash
# Simulated hosts on one machine: a network namespace per host, each with its own address in
# 198.18.0.0/24 (the benchmarking range of RFC 2544) and a veth link to a bridge that lives in one
# more namespace; each link optionally shaped with tbf in both directions — what separate machines on
# a 1 or 10 Gbit/s network look like to the cluster. Traffic never leaves the namespaces made here.
# The one home of this plumbing: run-hosts.sh, `bench links` and the simulated-hosts test use it.
#
#   scripts/sim-hosts.sh up --owner PID --hosts N [--rate RATE] [--rates R0,R1,…]
#       makes hosts 0…N-1 and prints one line per host: "<index> <address> <namespace>";
#       --rate shapes every link, --rates one per host (an empty entry leaves that link unshaped).
#   scripts/sim-hosts.sh down --owner PID
#       removes every namespace (and with it every link) made for PID.
#
# Namespaces are named bch-<owner pid>-h<k> and bch-<owner pid>-br: those whose owner is no longer
# running are stale and are removed by every `up` first. Host k has address 198.18.0.(k+1).
# Needs root (ip netns, tc) and iproute2.
set -euo pipefail

fail() { echo "sim-hosts: $1" >&2; exit 2; }

command=${1:-}
[ $# -gt 0 ] && shift
owner=""
hosts=""
rate=""
rates=""
while [ $# -gt 0 ]; do
  case "$1" in
    --owner) owner=${2:-}; shift 2 ;;
    --hosts) hosts=${2:-}; shift 2 ;;
    --rate) rate=${2:-}; shift 2 ;;
    --rates) rates=${2:-}; shift 2 ;;
    *) fail "unknown flag '$1'; use up --owner PID --hosts N [--rate R] [--rates R0,R1,…] or down --owner PID" ;;
  esac
done
case "$command" in
  up | down) ;;
  *) fail "say 'up' or 'down' first: scripts/sim-hosts.sh up --owner PID --hosts N [--rate R]" ;;
esac
[[ "$owner" =~ ^[1-9][0-9]{0,6}$ ]] || fail "--owner must be the id of the process the hosts belong to, not '$owner'"
if [ "$(id -u)" -ne 0 ]; then
  fail "simulated hosts need root (network namespaces and tc); run as root, or use scripts/run-cluster.sh for nodes on loopback"
fi
for tool in ip tc; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing; install iproute2 (apt-get install iproute2)"
done

namespace() { echo "bch-$owner-h$1"; }
bridge="bch-$owner-br"

down() {
  for ns in $(ip netns list | awk -v p="bch-$owner-" 'index($1, p) == 1 {print $1}'); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

if [ "$command" = down ]; then
  down
  exit 0
fi

[[ "$hosts" =~ ^[1-9][0-9]*$ ]] && [ "$hosts" -le 200 ] || fail "--hosts must be a whole number from 1 to 200, not '$hosts'"
per_host=()
if [ -n "$rates" ]; then
  rest="$rates,"   # split on commas keeping empty entries (read -a would drop a trailing one)
  while [ -n "$rest" ]; do per_host+=("${rest%%,*}"); rest=${rest#*,}; done
  [ "${#per_host[@]}" -eq "$hosts" ] || fail "--rates gives ${#per_host[@]} rates for $hosts hosts; give one per host (empty for unshaped)"
fi
rate_pattern='^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$'
for r in "$rate" "${per_host[@]}"; do
  if [ -n "$r" ] && ! [[ "$r" =~ $rate_pattern ]]; then fail "'$r' is not a rate tc understands; use e.g. 10gbit, 1gbit, 100mbit"; fi
done

# Namespaces of owners that are gone (a run that was killed before it could clean up).
for ns in $(ip netns list | awk '/^bch-[0-9]+-/ {print $1}'); do
  stale_owner=${ns#bch-}; stale_owner=${stale_owner%%-*}
  kill -0 "$stale_owner" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done
down                 # a second `up` for the same owner starts from nothing
trap 'down' ERR      # half a network is removed, not left behind

# The bucket holds 1 ms of the rate, at least 64 KiB (one offloaded segment): a larger bucket lets
# every step's first megabytes through at memory speed after the link sat idle during compute,
# which a real link never does (with 1 MB, a 100 Mbit/s link moved a 3 MB step in half its time).
burst_for() {
  awk -v r="$1" 'BEGIN { match(r, /^[0-9.]+/); n = substr(r, 1, RLENGTH); u = substr(r, RLENGTH + 1);
    scale = u == "gbit" ? 1e9 : u == "mbit" ? 1e6 : u == "kbit" ? 1e3 : 1;
    b = n * scale / 8 / 1000; if (b < 65536) b = 65536; printf "%d", b }'
}

shape() { # namespace, device, rate: a token bucket on the device's egress
  [ -z "$3" ] || ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$3" burst "$(burst_for "$3")" latency 50ms
}

ip netns add "$bridge"
ip -n "$bridge" link add br0 type bridge
ip -n "$bridge" link set br0 up
for h in $(seq 0 $((hosts - 1))); do
  ns=$(namespace "$h")
  address="198.18.0.$((h + 1))"
  link_rate=$rate
  [ -n "$rates" ] && link_rate=${per_host[$h]}
  ip netns add "$ns"
  ip link add "bch${owner}h$h" type veth peer name "bch${owner}b$h"
  ip link set "bch${owner}h$h" netns "$ns"
  ip link set "bch${owner}b$h" netns "$bridge"
  ip -n "$ns" link set "bch${owner}h$h" name eth0
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$bridge" link set "bch${owner}b$h" master br0
  ip -n "$bridge" link set "bch${owner}b$h" up
  shape "$ns" eth0 "$link_rate"                   # host → network
  shape "$bridge" "bch${owner}b$h" "$link_rate"   # network → host
  echo "$h $address $ns"
done
