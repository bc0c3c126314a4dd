# tradeops: `make demo` and `make test` are the whole quickstart.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DVC_VENV := .venv-dvc
export TRADEOPS_HOME ?= $(CURDIR)/.tradeops
export TRADEOPS_MARKET_SOURCE ?= synthetic:symbols=4,bars=2520,seed=7,reversal=0.5
export DAGSTER_HOME := $(TRADEOPS_HOME)/dagster
export TRADEOPS_DVC := $(CURDIR)/$(DVC_VENV)/bin/dvc
export DAGSTER_DISABLE_TELEMETRY := 1
export MLFLOW_TRACKING_URI ?= sqlite:///$(TRADEOPS_HOME)/mlflow/mlflow.db
export BENTOML_HOME ?= $(TRADEOPS_HOME)/bentoml
PIP_FLAGS := --disable-pip-version-check --no-input -q

.PHONY: demo test lint ui serve bench check-defs clean-home

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

env: $(VENV)/.installed $(DVC_VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	mkdir -p $(DAGSTER_HOME) $(TRADEOPS_HOME)/mlflow $(BENTOML_HOME)
	cp $< $@

demo: env
	$(VENV)/bin/tradeops demo

test: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/dg check defs
	$(PY) -m pytest -n 2 --dist loadgroup

lint: env
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

ui: env
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p $${TRADEOPS_UI_PORT:-3001}

serve: env
	$(VENV)/bin/tradeops serve

bench: env
	$(PY) -m bench.run

clean-home:
	rm -rf $(TRADEOPS_HOME)
