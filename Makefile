# treatment-marts: the two commands a new user needs are `make demo` and `make test`.
# Both create (or reuse) .venv and install the pinned dependencies -- only when the requirement files
# changed since the last install (stamp file .venv/.installed).
#
#   make demo   generate a synthetic month (2024-03), run the Airflow DAG for it (`airflow dags test`,
#               SQLite metadata under .airflow/), print where the marts, suppression log and Data Docs are
#   make test   the whole test suite (starts its own PostgreSQL server; runs the real DAG)
#   make check  lint, format, types and import contracts (CI runs it after the tests)
#
# Others: make check | ui | venv | backfill | generate | constraints | bench | clean

SHELL := /bin/bash
# Python 3.11 (pyproject: requires-python ">=3.11,<3.12"): python3.11 if present, else python3.
PYTHON ?= $(shell command -v python3.11 || command -v python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PERIOD ?= 2024-03
# backfill: MONTHS months of generated history ending at PERIOD (inclusive)
MONTHS ?= 24
# backfill: 1 = also execute the backfill locally until it completes; 0 = only create it
EXECUTE ?= 1
GENERATE_ARGS ?=
# the Airflow pool bounding warehouse connections (validate_area and publish run in it)
WAREHOUSE_POOL := warehouse
WAREHOUSE_SLOTS ?= 4
DATA_ROOT ?= $(CURDIR)/data
AIRFLOW_HOME_DIR := $(CURDIR)/.airflow
AIRFLOW_ENV := AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(AIRFLOW_HOME_DIR)/airflow.db \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__UNIT_TEST_MODE=False TREATMENT_MARTS_DATA_ROOT=$(DATA_ROOT) GX_ANALYTICS_ENABLED=False

.PHONY: demo ui backfill test check venv generate constraints bench clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml data-docs/package-lock.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "treatment-marts needs Python 3.11 (found %d.%d at $(PYTHON)); install python3.11 or run: make PYTHON=/path/to/python3.11 ..." % sys.version_info[:2])'
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then \
		echo "recreating $(VENV) (not a working Python 3.11 environment)"; rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@# Data Docs assets served offline (validation/data_docs.py), from the lockfile; without npm the docs use CDNs.
	@if command -v npm >/dev/null; then npm ci --prefix data-docs --ignore-scripts --no-audit --no-fund --silent; \
		else echo "npm not found: GX Data Docs will load their assets from public CDNs (apt-get install npm)"; fi
	@touch $(STAMP)

## venv: create or update .venv (what demo and test do first)
venv: $(STAMP)

## demo: generate a synthetic month, run the Airflow DAG for it, print where the outputs are
demo: $(STAMP)
	$(BIN)/treatment-marts generate --period $(PERIOD) --out $(DATA_ROOT)/inbox/period=$(PERIOD)/extract.csv
	@mkdir -p $(AIRFLOW_HOME_DIR)
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate > $(AIRFLOW_HOME_DIR)/db-migrate.log 2>&1 \
		|| { tail -n 40 $(AIRFLOW_HOME_DIR)/db-migrate.log; exit 1; }
	$(AIRFLOW_ENV) $(BIN)/airflow pools set $(WAREHOUSE_POOL) $(WAREHOUSE_SLOTS) "treatment-marts warehouse connections" > /dev/null
	$(AIRFLOW_ENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/airflow dags test monthly_treatment_pipeline $(PERIOD)-01 \
		> $(AIRFLOW_HOME_DIR)/demo-run.log 2>&1 || { tail -n 60 $(AIRFLOW_HOME_DIR)/demo-run.log; \
		echo "Airflow DAG run FAILED (full log: .airflow/demo-run.log)"; exit 1; }
	@echo "Airflow DAG run succeeded (log: .airflow/demo-run.log)"
	@$(BIN)/treatment-marts where --period $(PERIOD) --data-root $(DATA_ROOT)

## ui: the Airflow UI on the embedded defaults (SQLite metadata under .airflow/, data under data/): API server,
##     scheduler, triggerer and dag-processor with the plugins folder (governance page) until Ctrl-C. Prints the
##     URL and how to sign in: users UI_USERS (SimpleAuthManager user:role; passwords are generated into
##     .airflow/simple_auth_manager_passwords.json.generated), IG reviewers IG_REVIEWERS. Run `make demo` first
##     for data to look at.
UI_PORT ?= 8080
UI_USERS ?= admin:admin,ig_reviewer:op,analyst:viewer
IG_REVIEWERS ?= ig_reviewer
ui: $(STAMP)
	@mkdir -p $(AIRFLOW_HOME_DIR)
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate > $(AIRFLOW_HOME_DIR)/db-migrate.log 2>&1 \
		|| { tail -n 40 $(AIRFLOW_HOME_DIR)/db-migrate.log; exit 1; }
	$(AIRFLOW_ENV) $(BIN)/airflow pools set $(WAREHOUSE_POOL) $(WAREHOUSE_SLOTS) "treatment-marts warehouse connections" > /dev/null
	$(AIRFLOW_ENV) AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$(UI_USERS) TREATMENT_MARTS_IG_REVIEWERS=$(IG_REVIEWERS) \
		PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m treatment_marts.ops.airflow_local --ui $(UI_PORT) \
		--log-dir $(AIRFLOW_HOME_DIR)/components

## backfill: generate MONTHS months of history ending at PERIOD, create an Airflow backfill over them and
##           EXECUTE it: `airflow api-server` + `airflow scheduler` (LocalExecutor, SQLite under .airflow/) run
##           until the backfill is completed, then stop (treatment_marts.ops.airflow_local; logs: .airflow/components/).
##           EXECUTE=0 only creates it (for a scheduler that is already running, e.g. docker compose).
##           GENERATE_ARGS: extra `treatment-marts generate` options, e.g. "--clients 3000 --areas Exborough,Northton"
backfill: $(STAMP)
	@first=$$($(BIN)/python -c 'import pandas as pd; print((pd.Period("$(PERIOD)", "M") - $(MONTHS) + 1).strftime("%Y-%m"))'); \
	out=$(DATA_ROOT)/inbox; if [ "$(MONTHS)" = 1 ]; then out=$$out/period=$$first/extract.csv; fi; \
	mkdir -p $(AIRFLOW_HOME_DIR) && rm -f $(AIRFLOW_HOME_DIR)/db-migrate.log $(AIRFLOW_HOME_DIR)/backfill-create.log && \
	$(BIN)/treatment-marts generate --period $$first --months $(MONTHS) $(GENERATE_ARGS) --out $$out > /dev/null && \
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate > $(AIRFLOW_HOME_DIR)/db-migrate.log 2>&1 && \
	$(AIRFLOW_ENV) $(BIN)/airflow pools set $(WAREHOUSE_POOL) $(WAREHOUSE_SLOTS) "treatment-marts warehouse connections" > /dev/null && \
	$(AIRFLOW_ENV) $(BIN)/airflow dags reserialize > $(AIRFLOW_HOME_DIR)/backfill-create.log 2>&1 && \
	$(AIRFLOW_ENV) $(BIN)/airflow backfill create --dag-id monthly_treatment_pipeline \
		--from-date $$first-01 --to-date $(PERIOD)-01 --max-active-runs 1 --reprocess-behavior failed \
		>> $(AIRFLOW_HOME_DIR)/backfill-create.log 2>&1 || { echo "backfill setup FAILED; the end of its logs:"; \
		tail -n 30 $(AIRFLOW_HOME_DIR)/db-migrate.log $(AIRFLOW_HOME_DIR)/backfill-create.log 2>/dev/null; exit 1; }
	@echo "backfill created ($(MONTHS) months to $(PERIOD); log: .airflow/backfill-create.log)"
	@if [ "$(EXECUTE)" != 0 ]; then \
		$(AIRFLOW_ENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m treatment_marts.ops.airflow_local \
			--dag-id monthly_treatment_pipeline --log-dir $(AIRFLOW_HOME_DIR)/components; fi

## test: the whole suite (starts its own PostgreSQL server; runs the real DAG with dag.test(), and a backfill
##       with a real scheduler + API server)
test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH GX_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

## check: lint (ruff), format (ruff format --check), types (mypy on include/), import contracts (import-linter:
##        layer order, no Airflow under include/, the audit never imports the suppressor) and no cross-module
##        use of another module's _private names (scripts/check_private_imports.py)
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/check_private_imports.py

## generate: regenerate the GX suite, extract spec and mart catalogue from the contract and configuration
generate: $(STAMP)
	$(BIN)/python -m treatment_marts.contract.generate
	$(BIN)/python -m treatment_marts.marts.docs

## constraints: re-pin the full resolved dependency set after changing requirements
constraints: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^treatment-marts' > constraints.txt
	@touch $(STAMP)

## bench: every figure of docs/performance.md in one run (not a test; ~10 min idle on 2 cores): build/bench/bench.json,
## build/bench/bench.png and the goal ratios measured in the same run. BENCH_ARGS e.g. --clients 107000,1070000
BENCH_OUT ?= build/bench
bench: $(STAMP)
	$(BIN)/python -m treatment_marts.ops.bench --out $(BENCH_OUT) $(BENCH_ARGS)

## clean: remove the virtual environment, the demo's Airflow home and data
clean:
	rm -rf $(VENV) $(AIRFLOW_HOME_DIR) data .pytest_cache
