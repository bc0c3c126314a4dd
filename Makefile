# tradeops: `make demo` and `make test` are the whole quickstart.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DVC_VENV := .venv-dvc
# Every setting (TRADEOPS_HOME, TRADEOPS_MARKET_SOURCE, ...) has its default in the code, once;
# the tradeops CLI derives the Dagster, MLflow and BentoML locations from TRADEOPS_HOME itself.
export DAGSTER_DISABLE_TELEMETRY := 1
PIP_FLAGS := --disable-pip-version-check --no-input -q

.PHONY: demo drift-demo test lint ui serve bench mutate check-defs clean-home

# torch first: its pinned CPU wheel is on disk; any other resolution pulls CUDA.
$(VENV)/.installed: pyproject.toml requirements/lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) torch==2.13.0
	$(PY) -m pip install $(PIP_FLAGS) -c requirements/lock.txt -e '.[dev]'
	touch $@

# DVC gets its own environment: its hydra-core pins antlr4 4.9, Dagster needs 4.13.
$(DVC_VENV)/.installed: pyproject.toml requirements/dvc-lock.txt
	test -x $(DVC_VENV)/bin/python || $(PYTHON) -m venv $(DVC_VENV)
	$(DVC_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(DVC_VENV)/bin/python -m pip install $(PIP_FLAGS) -c requirements/dvc-lock.txt \
	  "$$($(PYTHON) -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["dependency-groups"]["dvc"][0])')"
	touch $@

env: $(VENV)/.installed $(DVC_VENV)/.installed
	$(VENV)/bin/tradeops init

demo: env
	$(VENV)/bin/tradeops demo

# The closed loop on a fresh home: drift in, retrain, gate, new bento serving (docs/monitoring.md).
drift-demo: env
	$(VENV)/bin/tradeops drift-demo

test: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/dg check defs
	$(PY) -m pytest -n 2 --dist loadgroup

lint: env
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

ui: env
	$(VENV)/bin/tradeops ui

serve: env
	$(VENV)/bin/tradeops serve

bench: env
	$(PY) -m pip install $(PIP_FLAGS) -c requirements/lock.txt -e '.[bench]'
	$(PY) -m bench.run

# Mutation testing of the modules that decide money and promotion; writes docs/quality.md.
mutate: env
	$(PY) -m pip install $(PIP_FLAGS) -c requirements/lock.txt -e '.[mutate]'
	rm -rf mutants
	$(PY) -m tests.mutation_report

clean-home:
	rm -rf $${TRADEOPS_HOME:-.tradeops}
