#!/usr/bin/env bash
# `make run`: demo data, Asterisk, then serve in the foreground, all on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
CP=.venv/bin/callpilot
$CP demo
$CP asterisk up
trap '$CP asterisk down' EXIT
cat <<TXT

CallPilot is up on loopback.
  Try a call without a softphone:   .venv/bin/callpilot call 800 --dtmf 1
  Register a softphone as one of the agents above, then call 800 from the trunk side.
  Live status:                      .venv/bin/callpilot status --json
  Stop: Ctrl-C (Asterisk is stopped too).

TXT
$CP serve
