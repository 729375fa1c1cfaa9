# hildanext: `make run` builds the venv and runs the DVC pipeline on the embedded demo; `make test` runs the suite.
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(abspath $(VENV))/bin
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PATH := $(BIN):$(PATH)

.PHONY: setup run test test-fast lint style clean-demo
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@
run: setup
	dvc repro
	$(BIN)/python benchmarks/plot_frontier.py
test: setup
	$(BIN)/python -m pytest -q -ra --durations=20
test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow"
lint: setup
	$(BIN)/ruff check src stages tests benchmarks
style:
	python3 ../shared/tools/style_check.py .
