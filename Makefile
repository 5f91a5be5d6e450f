# fhir-assets: every target creates or updates .venv itself from requirements.lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV     := $(BIN)/uv
# pytest workers: one per core (2 on CI)
WORKERS ?= auto

.PHONY: install demo demo-snowflake ui ui-check sandbox test lint typecheck unit bench lock clean prod-local

install: $(STAMP)

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE=1 (or a read-only image) nothing is compiled
# later, and every command would recompile Dagster (10-20 s) before doing anything.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] >= (3, 11), "fhir-assets needs Python 3.11+"'
	@test -x $(UV) || $(BIN)/python -m pip install --quiet "uv==0.13.9"
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@# the package itself is installed editable: compile it too (PYTHONDONTWRITEBYTECODE=1 here)
	$(BIN)/python -m compileall -q fhir_assets
	@touch $@

## demo: local FHIR sandbox with synthetic data -> every raw asset -> DuckDB, then row counts
demo: install
	$(BIN)/fhir-assets demo

## demo-snowflake: the same demo landing into Snowflake: SNOWFLAKE_* if set, else a local
## Snowflake emulator (fakesnow, reached through the real connector); row counts from Snowflake
demo-snowflake: install
	$(BIN)/fhir-assets demo --warehouse snowflake

## ui: the Dagster UI on 127.0.0.1:3000 against the same sandbox and DuckDB file
ui: install
	$(BIN)/fhir-assets ui

## ui-check: make demo's flow, then the Dagster UI in headless Chromium (Debian's chromium, driven
## by Playwright): raw assets materialized with every partition filled, views materialized, no
## "Never materialized" asset in the default groups, each partition's own metadata window, then a
## raw backfill launched as the UI launches it and the views rebuilt after it by default;
## screenshots in .fhir-assets/ui-check/. Not part of `make test` (installs chromium via apt).
ui-check: install
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	@# Playwright drives the system Chromium (never `playwright install`); kept out of the lock
	@$(BIN)/python -c 'import playwright' 2>/dev/null || $(UV) pip install --quiet --python $(BIN)/python playwright
	$(BIN)/python -m fhir_assets_tests.ui.ui_check

## sandbox: just the seeded FHIR server, until Ctrl-C
sandbox: install
	$(BIN)/fhir-assets sandbox

## prod-local: PostgreSQL + sandbox + two code servers + daemon + webserver on deploy/dagster.yaml;
## schedule tick, export sensor, backfill, daemon SIGKILL, wiped DAGSTER_HOME (needs Debian's postgresql)
prod-local: install
	$(BIN)/python -m fhir_assets_tests.deploy.prod_local

## test: lint + type check of the client library + the whole test suite (what CI runs)
test: lint typecheck unit

lint: install
	$(BIN)/ruff check fhir_assets fhir_assets_tests bench
	$(BIN)/ruff format --check fhir_assets fhir_assets_tests bench

typecheck: install
	$(BIN)/mypy fhir_assets/fhir

unit: install
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup

bench: install
	@for script in bench/*.py; do [ -e "$$script" ] || continue; echo "== $$script"; $(BIN)/python $$script || exit 1; done

## lock: re-resolve requirements.lock from pyproject.toml
lock: install
	$(UV) pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .fhir-assets .pytest_cache .ruff_cache .mypy_cache
