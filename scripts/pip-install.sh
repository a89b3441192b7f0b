#!/usr/bin/env bash
# pip install of the project with a sign of progress: one line per package pip collects
# or installs, instead of either silence (-q) or pages of output.  On failure, the last
# lines of pip's full output (kept in .venv/pip-install.log).
set -u
pip="$1"
log="$(dirname "$(dirname "$pip")")/pip-install.log"
"$pip" install --progress-bar off -e '.[test]' > >(tee "$log" \
  | grep --line-buffered -E '^(Collecting|Installing collected|Successfully)' \
  | sed -u -E 's/^Collecting /    collecting /') 2>&1
code=$?
sleep 0.2   # let the filter print its last lines
if [ "$code" -ne 0 ]; then
  echo "pip failed (exit $code); last lines of $log:" >&2
  tail -n 30 "$log" >&2
fi
exit "$code"
