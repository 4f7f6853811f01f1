# Shared by run-cluster.sh and run-hosts.sh (sourced, not run): starting node processes with their
# output prefixed, and ending with the coordinator's JSON summary line. Uses the caller's $tmp and pids.

# start_node NAME COMMAND…: runs it in the background, every output line prefixed with [NAME]; the
# coordinator's stdout is also kept in $tmp/coordinator.out for its summary line.
start_node() {
  local name=$1; shift
  if [ "$name" = coordinator ]; then
    "$@" > >(tee "$tmp/coordinator.out" | sed -u "s/^/[$name] /") 2> >(sed -u "s/^/[$name] /" >&2) &
  else
    "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  fi
  pids+=("$!")
}

# finish_with_summary PID: waits for the coordinator, prints its summary line last, exits with its status.
finish_with_summary() {
  local status
  set +e
  wait "$1"
  status=$?
  set -e
  local summary
  summary=$(tail -n 1 "$tmp/coordinator.out" 2>/dev/null || true)
  if [ "$status" -eq 0 ] && [ "${summary:0:1}" = "{" ]; then
    echo "$summary"
  fi
  exit "$status"
}
