# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
CP := $(VENV)/bin/callpilot
STAMP := $(VENV)/.installed

# The call paths once more with serve on PostgreSQL (unit DB tests already run on both):
PG_E2E := tests/e2e/test_call_path.py tests/e2e/test_acd_routing.py tests/e2e/test_ivr_speech.py

.PHONY: deps venv lint run test test-pg unit e2e asterisk-up asterisk-down clean

deps:
	bash scripts/install-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: deps venv
	bash scripts/run.sh

lint: venv
	$(VENV)/bin/lint-imports

test: deps venv lint
	$(VENV)/bin/pytest -q -ra tests
	CALLPILOT_E2E_DATABASE=postgresql $(VENV)/bin/pytest -q -ra $(PG_E2E)

test-pg: deps venv
	CALLPILOT_E2E_DATABASE=postgresql $(VENV)/bin/pytest -q -ra $(PG_E2E)

unit: venv
	$(VENV)/bin/pytest -q tests/unit

e2e: deps venv
	$(VENV)/bin/pytest -q -ra tests/e2e

asterisk-up: deps venv
	$(CP) asterisk up

asterisk-down: venv
	$(CP) asterisk down

clean:
	-$(CP) asterisk down
	rm -rf var .pytest_cache
