# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
CP := $(VENV)/bin/callpilot
STAMP := $(VENV)/.installed
# Every set-up step prints its name, a sign of life every 30 s, its time, and on failure
# how to retry it (scripts/step.sh).
STEP := bash scripts/step.sh

# The call paths once more with serve on PostgreSQL (unit DB tests already run on both).
# test_ivr_speech.py and test_routing_tickets.py were listed here but make instances of their
# own on SQLite whatever the setting, so their second run tested nothing new (D30).
PG_E2E := tests/e2e/test_call_path.py tests/e2e/test_acd_routing.py \
	tests/e2e/test_ivr_features.py tests/e2e/test_outbound.py
# Files that only make sense on PostgreSQL (several nodes on one database): in the e2e run
# once, and in test-pg.
PG_ONLY_E2E := tests/e2e/test_two_nodes.py
PYTEST := $(VENV)/bin/pytest -q -ra -p no:cacheprovider
# Unit tests on both cores (CPU-bound).  Then one session for the web and end-to-end files and
# the PG_E2E files a second time on PostgreSQL, as items of their own (--e2e-postgresql): each
# file runs on one worker (each e2e file has its own Asterisk and serve on ports of its own),
# heaviest first by tests/file_times.json, so the PostgreSQL copies run beside the SQLite
# files and short files fill the end (tests/scheduling.py).  These files mostly wait on calls:
# 3 workers kept about half of 2 cores busy, 4 keep about three quarters (D30).
E2E_WORKERS ?= 4
ALSO_ON_PG := $(addprefix --e2e-postgresql=,$(PG_E2E))

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
	$(PYTEST) -n $(E2E_WORKERS) --dist loadfile tests --ignore=tests/unit $(ALSO_ON_PG)

test-pg: deps venv asterisk-install
	CALLPILOT_E2E_DATABASE=postgresql $(PYTEST) -n $(E2E_WORKERS) --dist loadfile $(PG_E2E) $(PG_ONLY_E2E)

unit: venv
	$(PYTEST) -n 2 tests/unit

e2e: deps venv asterisk-install
	$(PYTEST) -n $(E2E_WORKERS) --dist loadfile tests --ignore=tests/unit $(ALSO_ON_PG)

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
