# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
CP := $(VENV)/bin/callpilot
STAMP := $(VENV)/.installed

.PHONY: deps venv run test unit e2e asterisk-up asterisk-down clean

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

test: deps venv
	$(VENV)/bin/pytest -q -ra tests

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
