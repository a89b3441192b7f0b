# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
CP := $(VENV)/bin/callpilot
STAMP := $(VENV)/.installed
# Every set-up step prints its name, a sign of life every 30 s, its time, and on failure
# how to retry it (scripts/step.sh).
STEP := bash scripts/step.sh

# The call paths once more with serve on PostgreSQL (unit DB tests already run on both):
PG_E2E := tests/e2e/test_call_path.py tests/e2e/test_acd_routing.py tests/e2e/test_ivr_speech.py \
	tests/e2e/test_routing_tickets.py tests/e2e/test_ivr_features.py tests/e2e/test_outbound.py
# Unit tests on both cores; end-to-end files side by side (each file has its own Asterisk and
# serve on ports of its own, so files are isolated; --dist loadfile keeps a file on one worker).
PYTEST := $(VENV)/bin/pytest -q -ra -p no:cacheprovider
E2E_WORKERS ?= 3


.PHONY: deps venv asterisk-install lint run test test-pg unit e2e bench asterisk-up asterisk-down clean

deps:
	@$(STEP) "Debian packages (scripts/debian-packages.txt)" "make deps" bash scripts/install-deps.sh

$(STAMP): pyproject.toml
	@$(STEP) "virtualenv $(VENV)" "rm -rf $(VENV) && make venv" $(PYTHON) -m venv $(VENV)
	@$(STEP) "pip: upgrade pip" "make venv" $(VENV)/bin/pip install --progress-bar off --upgrade pip
	@$(STEP) "pip: CallPilot and its Python packages (a few minutes on a fresh machine)" "make venv" \
		bash scripts/pip-install.sh $(VENV)/bin/pip
	touch $(STAMP)

venv: $(STAMP)

asterisk-install: venv
	@$(STEP) "Asterisk 22 (system binary, else a Debian sid root filesystem, built once)" \
		"$(CP) asterisk install" $(CP) asterisk install

run: deps venv asterisk-install
	bash scripts/run.sh

lint: venv
	@$(STEP) "import contracts (lint-imports)" "make lint" $(VENV)/bin/lint-imports

test: deps venv asterisk-install lint
	$(PYTEST) -n 2 tests/unit
	$(PYTEST) -n $(E2E_WORKERS) --dist loadfile tests --ignore=tests/unit
	CALLPILOT_E2E_DATABASE=postgresql $(PYTEST) -n $(E2E_WORKERS) --dist loadfile $(PG_E2E)

test-pg: deps venv asterisk-install
	CALLPILOT_E2E_DATABASE=postgresql $(PYTEST) -n $(E2E_WORKERS) --dist loadfile $(PG_E2E)

unit: venv
	$(PYTEST) -n 2 tests/unit

e2e: deps venv asterisk-install
	$(PYTEST) -n $(E2E_WORKERS) --dist loadfile tests --ignore=tests/unit

# Benchmarks: what they need (Debian packages incl. dumpcap from wireshark-common, sipp, the
# Asterisk rootfs), then each one, printing its figures beside bench/baselines/.  Needs root
# (Asterisk rootfs, packet capture on lo).  BENCH_ARGS is passed to each, e.g. --quick.
# bench.load (300 calls at 20/s per path, 40 agents) adds about 50 s.
BENCHES ?= acd ivr load
bench: deps venv asterisk-install
	@command -v dumpcap >/dev/null || { echo "dumpcap missing after make deps (wireshark-common)"; exit 2; }
	@command -v sipp >/dev/null || { echo "sipp missing after make deps (sip-tester)"; exit 2; }
	@for b in $(BENCHES); do echo "== python -m bench.$$b $(BENCH_ARGS)"; \
		$(VENV)/bin/python -m bench.$$b $(BENCH_ARGS) || exit $$?; done

asterisk-up: deps venv
	$(CP) asterisk up

asterisk-down: venv
	$(CP) asterisk down

clean:
	-$(CP) asterisk down
	rm -rf var .pytest_cache
