# One entry point for every job. `make demo` and `make test` work on a fresh machine: they create
# the virtualenv and install the pinned dependencies (and the pinned npm CDK CLI) first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test coverage lint typecheck synth nag pytest unit integration infrastructure e2e fuzz bench bench-agent bench-restore bench-control bench-pitr schemas clean install browser

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Headless Chromium from Debian's packages for the evidence report's browser test
## (tests/backupctl/test_report_browser.py skips, saying so, where it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (Debian package) for the report's browser test" >&2; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "warning: chromium is not installed and apt-get (as root) is not available: the browser test will skip" >&2; \
	  fi; \
	}

install: $(VENV)/.installed node_modules/.installed browser

## The pipeline's main job, locally on embedded defaults: moto server, dispatcher, real agent,
## audit ledger, watchdog and a restore round trip. Exits non-zero saying why if any step fails.
demo: $(VENV)/.installed
	$(PY) -m local_pipeline

## Every test and gate: lint, types, request schemas up to date, synth with cdk-nag, cfn-lint, every test
## tier. (The line and branch coverage report is `make coverage`: tracing nearly triples pytest's time.)
test: install
	./scripts/ensure-services.sh
	$(MAKE) lint typecheck schemas-check synth pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

schemas:
	$(PY) -m backup_contracts.schemas write schemas

schemas-check:
	$(PY) -m backup_contracts.schemas check schemas

synth:
	npx cdk synth --quiet > /dev/null
	$(BIN)/cfn-lint --ignore-checks W3005 --format parseable -- cdk.out/*.template.json

## In parallel, one worker per core (at most 4: the real database servers are shared by the workers).
pytest:
	$(BIN)/pytest --numprocesses=auto --maxprocesses=4

## The whole suite with a line and branch coverage report (pyproject.toml [tool.coverage]).
coverage: install
	./scripts/ensure-services.sh
	$(BIN)/pytest --cov --cov-report=term:skip-covered

## One test tier alone (tests/conftest.py says what each holds): unit runs in seconds with sockets blocked.
unit integration e2e: install
	$(BIN)/pytest -m $@

infrastructure: install  # the access matrix needs the pinned IAM evaluator from node_modules
	$(BIN)/pytest -m $@

## Hostile input against every handler entry point (restore coordinator, audit, dispatcher, watchdog, the
## agent's job intake): ten times the budget `make test` runs, fresh random cases each time (tests/fuzzing.py).
fuzz: $(VENV)/.installed
	BACKUP_FUZZ=fuzz $(BIN)/pytest -p no:cacheprovider --timeout=1800 $(wildcard tests/*/test_fuzz_*.py)

bench: bench-agent bench-control

bench-agent: $(VENV)/.installed
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.agent_stream

## Restore time, request -> verified: the agent against a local pg_restore / mariadb (docs/benchmarks.md).
bench-restore: $(VENV)/.installed
	$(PY) -m bench.restore

## Point-in-time recovery: base backup, WAL push under pgbench load, recovery (docs/benchmarks.md).
bench-pitr: $(VENV)/.installed
	$(PY) -m bench.pitr

bench-control: $(VENV)/.installed
	$(PY) -m bench.control_plane

clean:
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache
