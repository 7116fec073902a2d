#!/usr/bin/env bash
# run_fault_test.sh LIMIT_S [PATTERN ...] -- COMMAND [ARG ...]
# Runs COMMAND (an mpirun line whose job has a failing rank) and passes when it exits non-zero within
# LIMIT_S seconds and its output matches every PATTERN (grep -E). A job still running at LIMIT_S is
# killed and the test fails: a hang is exactly what this guards against.
set -u
limit=$1
shift
patterns=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  patterns+=("$1")
  shift
done
shift  # the "--"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s%N)
timeout -k 10 "$limit" "$@" >"$log" 2>&1
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
cat "$log"
elapsed=$(printf '%d.%03d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000)))
echo "fault test: exit code ${rc} after ${elapsed} s (limit ${limit} s)"

status=0
if ((elapsed_ms >= limit * 1000)); then
  echo "FAIL: the job did not end within ${limit} s"
  status=1
elif ((rc == 0)); then
  echo "FAIL: the job exited with code 0 although a rank failed"
  status=1
fi
for p in "${patterns[@]}"; do
  if ! grep -Eq -- "$p" "$log"; then
    echo "FAIL: the output does not match: $p"
    status=1
  fi
done
exit $status
