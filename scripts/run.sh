#!/usr/bin/env bash
# `make run`: demo data, Asterisk, prompts, then serve in the foreground, all on loopback.
# Each step says its name, its time, and on failure how to retry it (scripts/step.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CP=.venv/bin/callpilot
STEP="bash scripts/step.sh"
$STEP "demo data (queues, agents, customers)" "$CP demo" $CP demo
$STEP "Asterisk up" "$CP asterisk up  (logs: var/asterisk/log)" $CP asterisk up
trap '$CP asterisk down' EXIT
$STEP "prompts of the live flows (text to speech, once)" "$CP flows render" $CP flows render
cat <<TXT

CallPilot is up on loopback.
  Try a call without a softphone:   .venv/bin/callpilot call 800 --dtmf 1
  Register a softphone as one of the agents above, then call 800 from the trunk side:
  say "billing", "cards", "lost card" or "agent" (English, pocketsphinx), or press keys;
  802 is the Korean demo (네 / 아니요, 상담원).
  Live status:                      .venv/bin/callpilot status --json
  Stop: Ctrl-C (Asterisk is stopped too).

TXT
$CP serve
