#!/usr/bin/env bash
# The chaos run: a coordinator and 4 worker processes on loopback train 300 steps while workers are
# killed (SIGKILL) and stopped (SIGTERM) at seeded random moments and replaced; then the event log and
# the final parameters are checked against a fault-free run (docs/architecture.md, "Faults").
# Last line: 'chaos: N events (…), N steps, 0 lost, max|Δ| … vs the fault-free run'; exit 0 only when
# every step committed exactly its global batch and the parameters are within 1e-4.
#
#   scripts/chaos.sh [--workers 4] [--steps 300] [--events 6] [--chaos-seed 1] [--out chaos] …   ('batchcluster chaos --help')
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-prerequisites.sh"
exec "$root/scripts/batchcluster" chaos "$@"
