#!/usr/bin/env bash
# `make run`: demo data, Asterisk, prompts, the admin web, then serve in the foreground, all on
# loopback.  Each step says its name, its time, and on failure how to retry it (scripts/step.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CP=.venv/bin/callpilot
STEP="bash scripts/step.sh"
$STEP "demo data (queues, agents, customers)" "$CP demo" $CP demo
# The first admin's password is generated at install and printed this once (no default).
ADMIN=$($CP users bootstrap)
WEB_URL=$(.venv/bin/python -c 'from callpilot.infra.config import load; c = load(); print(f"http://{c.web_host}:{c.web_port}/")')
METRICS_URL=$(.venv/bin/python -c 'from callpilot.infra.config import load; c = load(); print(f"http://{c.metrics_host}:{c.metrics_port}/metrics" if c.metrics_port else "off (metrics_port = 0)")')
$STEP "Asterisk up" "$CP asterisk up  (logs: var/asterisk/log)" $CP asterisk up
$CP web &
WEB_PID=$!
trap 'kill $WEB_PID 2>/dev/null || true; $CP asterisk down' EXIT
$STEP "prompts of the live flows (text to speech, once)" "$CP flows render" $CP flows render
cat <<TXT

CallPilot is up on loopback.
  Admin web:                        $WEB_URL
    $ADMIN
  Try a call without a softphone:   .venv/bin/callpilot call 800 --dtmf 1
  Register a softphone as one of the agents above, then call 800 from the trunk side:
  say "billing", "cards", "lost card" or "agent" (English, pocketsphinx), or press keys;
  802 is the Korean demo (네 / 아니요, 상담원).
  Live status:                      .venv/bin/callpilot status --json
  Prometheus (serve):               $METRICS_URL
  Stop: Ctrl-C (Asterisk and the web are stopped too).

TXT
$CP serve
