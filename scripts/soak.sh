#!/usr/bin/env bash
# The soak run: a coordinator and 2 worker processes on loopback train 20,000 steps while every
# process's resident memory is sampled; the step times come from the event log. Passes (exit 0) when
# memory and the median step time grew less than 10 % from step 100 to the end.
# Last line: 'soak: S steps, memory growth coordinator +x %, workers +y % (max), step time +z % …';
# the samples are in DIR/soak.csv.
#
#   scripts/soak.sh [--workers 2] [--steps 20000] [--model mlp|cnn] [--out soak] …   ('batchcluster soak --help')
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-prerequisites.sh"
exec "$root/scripts/batchcluster" soak "$@"
