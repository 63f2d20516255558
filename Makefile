# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.DEFAULT_GOAL := help
.PHONY: help run test test-unit test-integration lint format demo-model clean

help:
	@echo "make run   - install, build the demo model if absent, run Redis (if needed) + gateway + worker"
	@echo "make test  - install dev dependencies and run the whole suite (starts its own Redis)"
	@echo "make lint  - ruff"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "onnxq needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[export,embedded]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[export,boosting,embedded,dev,torch]'
	@touch $@ $(VENV)/.run-installed

demo-model: $(VENV)/.run-installed
	$(BIN)/onnxq demo-model --if-missing

run: demo-model
	$(BIN)/onnxq run

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
