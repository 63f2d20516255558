# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.DEFAULT_GOAL := help
.PHONY: help run test test-unit test-integration lint format demo-model protos clean

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

# The gRPC service's Python, generated from gateway/grpc_api/open_inference.proto with
# grpcio-tools 1.75.1 (its protoc and protobuf are 6.x, as the runtime pin) in its own venv. The
# messages go into a descriptor pool of their own, so that a process may also load another
# copy of the protocol (tritonclient's) without a "duplicate symbol" clash.
PROTO_TOOLS := $(VENV)/protoc-tools
protos: | $(BIN)/python
	test -x $(PROTO_TOOLS)/bin/python || $(BIN)/python -m venv $(PROTO_TOOLS)
	$(PROTO_TOOLS)/bin/pip install --quiet grpcio-tools==1.75.1 protobuf==6.33.6
	$(PROTO_TOOLS)/bin/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \
		--grpc_python_out=. gateway/grpc_api/open_inference.proto
	sed -i 's/_descriptor_pool.Default().AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' \
		gateway/grpc_api/open_inference_pb2.py
