#!/usr/bin/env bash
# The main job: install what is missing, build, and train the MLP on the real Fashion-MNIST with a
# local simulated cluster of 4 workers, ending with the run's summary. Extra flags are passed on to
# 'batchcluster train' (later flags win over nothing: give each flag once).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-prerequisites.sh"
cd "$root"
if [ $# -gt 0 ]; then
  exec scripts/batchcluster train "$@"
fi
exec scripts/batchcluster train --workers 4 --model mlp --global-batch 128 \
  --optimizer momentum --lr 0.05 --epochs 10
