# gliomics: the two commands of the README are `make demo` and `make test`.
# Everything installs into .venv from requirements.lock (the one place
# versions are pinned), CPU-only, with no downloads at run time.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test test-fast lock ui clean-reports

## setup: create .venv and install the locked dependencies and gliomics
setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "gliomics needs Python 3.11 (the lock is resolved for it); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# --no-deps: install exactly the lock; tf-keras would otherwise pull the
	# full `tensorflow` wheel next to tensorflow-cpu.
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## demo: set up, regenerate the embedded demo cohort if absent, run the pipeline, summarise
demo: setup
	@if [ ! -d data/raw ]; then $(BIN)/gliomics synth --out data/raw; fi
	$(BIN)/dvc repro
	$(BIN)/gliomics summary

## test: set up and run the test suite (first installs Chromium and PostgreSQL for the browser and
## scale-out tests when root on Debian/Ubuntu; elsewhere those tests skip, saying why)
test: setup
	bash scripts/install-test-system-deps.sh
	$(BIN)/python -m pytest

## test-fast: the inner loop: every test not marked slow (no end-to-end DVC, browser or PostgreSQL test)
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

## lock: re-resolve requirements.lock from pyproject.toml (needs the registry)
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '/^#/p' requirements.lock; .venv-lock/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^tensorflow==' ; } > requirements.lock.new && mv requirements.lock.new requirements.lock
	rm -rf .venv-lock

## ui: open the MLflow UI on the project's store (http://127.0.0.1:5000)
ui: setup
	$(BIN)/gliomics ui
