#!/usr/bin/env bash
# Renders a report written by `batchcluster analyze` (or scripts/run.sh) into PNG screenshots with
# headless Chromium, 1400 px wide, so anyone can look at its pages without a browser:
#   scripts/screenshot-report.sh REPORT_DIR [--out DIR] [--run-pages N]
# For index.html and the first N run pages (runs/*/index.html, default 4; 0 for none) it writes
# NAME.png (the first screen, 1400×900: what a reader sees at a glance) and NAME-full.png (the
# whole page). Output goes to REPORT_DIR/screenshots unless --out says otherwise. Installs Debian's
# chromium when it is missing (through scripts/install-prerequisites.sh). Nothing leaves the machine:
# the pages load only the PNGs beside them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { echo "usage: scripts/screenshot-report.sh REPORT_DIR [--out DIR] [--run-pages N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
report=$1; shift
out="" run_pages=4
while [ $# -gt 0 ]; do
  case $1 in
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --run-pages) [ $# -ge 2 ] || usage; run_pages=$2; shift 2 ;;
    *) echo "screenshot-report: unknown option '$1'; the options are --out DIR and --run-pages N" >&2; exit 2 ;;
  esac
done
if [ ! -f "$report/index.html" ]; then
  echo "screenshot-report: '$report' holds no index.html; give the directory 'batchcluster analyze --out' wrote" >&2
  exit 2
fi
if ! [[ $run_pages =~ ^[0-9]+$ ]]; then
  echo "screenshot-report: --run-pages must be a whole number (0 for none), not '$run_pages'" >&2
  exit 2
fi
report=$(cd "$report" && pwd)
out=${out:-$report/screenshots}
mkdir -p "$out"
out=$(cd "$out" && pwd)

browser=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null 2>&1; then browser=$candidate; break; fi
done
if [ -z "$browser" ]; then
  "$root/scripts/install-prerequisites.sh" chromium
  browser=chromium
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$profile")
[ "$(id -u)" -eq 0 ] && flags+=(--no-sandbox) # Chromium refuses to run as root inside its sandbox

# A height that holds the whole page: two figures to a row (~600 px each), ~24 px per table row, the header.
page_height() {
  local figures rows
  figures=$(grep -o '<figure>' "$1" | wc -l)
  rows=$(grep -o '<tr>' "$1" | wc -l)
  echo $(( 700 + (figures + 1) / 2 * 620 + rows * 24 ))
}

shoot() { # page.html name
  local page=$1 name=$2 log
  log=$(mktemp)
  for size in "1400,900:$name.png" "1400,$(page_height "$page"):$name-full.png"; do
    if ! "$browser" "${flags[@]}" --window-size="${size%%:*}" --screenshot="$out/${size#*:}" "file://$page" >"$log" 2>&1 \
        || [ ! -s "$out/${size#*:}" ]; then
      echo "screenshot-report: $browser could not render $page:" >&2
      tail -5 "$log" >&2
      rm -f "$log"
      exit 1
    fi
  done
  rm -f "$log"
  echo "$out/$name.png $out/$name-full.png"
}

shoot "$report/index.html" index
if [ "$run_pages" -gt 0 ] && [ -d "$report/runs" ]; then
  find "$report/runs" -mindepth 2 -maxdepth 2 -name index.html | sort | head -n "$run_pages" | while read -r page; do
    shoot "$page" "run-$(basename "$(dirname "$page")")"
  done
fi
