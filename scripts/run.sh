#!/usr/bin/env bash
# The main job: install what is missing, build, and train the MLP on the real Fashion-MNIST with a
# local simulated cluster of 4 workers, then write the run's report (tables, plots, index.html)
# next to its event log: the run page (docs/architecture.md, "Experiments and analysis").
# Extra flags replace the defaults and go to 'batchcluster train'.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-prerequisites.sh"
cd "$root"
if [ $# -gt 0 ]; then
  args=("$@")
else
  args=(--workers 4 --model mlp --global-batch 128 --optimizer momentum --lr 0.05 --epochs 10)
fi
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
scripts/batchcluster train "${args[@]}" | tee "$summary"
# The summary line (last on stdout) names the event log; the report goes beside it.
log_path=$(tail -n 1 "$summary" | grep -o '"log_path":"[^"]*"' | cut -d'"' -f4)
report="$(dirname "$log_path")/report"
# 85 % validation accuracy: the target the experiments use (docs/experiments.md), for the time-to-target figures.
scripts/batchcluster analyze "$log_path" --out "$report" --target-accuracy 0.85 > /dev/null
echo "report: $report/index.html"
