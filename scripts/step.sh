#!/usr/bin/env bash
# One set-up step that shows where it is:  step.sh NAME RETRY COMMAND [ARGS...]
#   ==> NAME                       when it starts
#   ... NAME: still running (60 s) every 30 s while it runs (pip, mmdebstrap are quiet)
#   ok  NAME (12.3 s)              when it succeeds
#   !!  NAME failed after 12.3 s (exit 1); retry with: RETRY      and its exit code
set -uo pipefail
name="$1"; retry="$2"; shift 2
started=$(date +%s.%N)
elapsed() { awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
echo "==> $name"
( while sleep 30 </dev/null >/dev/null 2>&1; do echo "... $name: still running ($(elapsed) s)"; done ) &
beat=$!
"$@"
code=$?
kill "$beat" 2>/dev/null
wait "$beat" 2>/dev/null
if [ "$code" -eq 0 ]; then
  echo "ok  $name ($(elapsed) s)"
else
  echo "!!  $name failed after $(elapsed) s (exit $code); retry with: $retry" >&2
fi
exit "$code"
