# treatment-marts: the two commands a new user needs are `make demo` and `make test`.
# Both create (or reuse) .venv and install the pinned dependencies when the requirement files change.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PERIOD ?= 2024-03
DATA_ROOT ?= $(CURDIR)/data
AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__UNIT_TEST_MODE=False \
	TREATMENT_MARTS_DATA_ROOT=$(DATA_ROOT) GX_ANALYTICS_ENABLED=False

.PHONY: demo test venv generate constraints bench clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

## demo: generate a synthetic month, run the Airflow DAG for it, print where the outputs are
demo: $(STAMP)
	$(BIN)/treatment-marts generate --period $(PERIOD) --out $(DATA_ROOT)/inbox/period=$(PERIOD)/extract.csv
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate > /dev/null
	$(AIRFLOW_ENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/airflow dags test monthly_treatment_pipeline $(PERIOD)-01 \
		> $(CURDIR)/.airflow/demo-run.log 2>&1 || { tail -n 40 $(CURDIR)/.airflow/demo-run.log; exit 1; }
	@echo "Airflow DAG run succeeded (log: .airflow/demo-run.log)"
	@$(BIN)/treatment-marts where --period $(PERIOD) --data-root $(DATA_ROOT)

## test: the whole suite (starts its own PostgreSQL server; runs a real Airflow DAG)
test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH GX_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider $(PYTEST_ARGS)

## generate: regenerate the GX suite, extract spec and mart catalogue from the contract and configuration
generate: $(STAMP)
	$(BIN)/python -m treatment_marts.contract.generate
	$(BIN)/python -m treatment_marts.marts.docs

## constraints: re-pin the full resolved dependency set after changing requirements
constraints: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^treatment-marts' > constraints.txt

## bench: the benchmark (not a test): per-stage time and memory, baseline, scaling
bench: $(STAMP)
	$(BIN)/treatment-marts bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .airflow data .pytest_cache
