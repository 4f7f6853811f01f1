#!/usr/bin/env bash
# Installs what is missing, builds everything in Release, runs every test, and ends with one line
# "N passed, N failed". Exit code 0 only when all tests pass.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# docker.io, docker-compose and debootstrap: the container tests; prometheus: the monitoring test.
"$root/scripts/install-prerequisites.sh" docker-compose docker.io debootstrap prometheus
cd "$root"
dotnet build BatchCluster.sln -c Release -nologo -v quiet

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dotnet test BatchCluster.sln -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# dotnet test prints one "Passed!/Failed!  - Failed: F, Passed: P, ..." line per test assembly.
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
skipped=$(grep -oE 'Skipped: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
summary="$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || summary+=", $skipped skipped (tests that need root, Docker or Prometheus: see their skip reasons)"
echo "$summary"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
