# The two commands of a fresh machine: `make serve` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.13.0 CPU is what this project's machines carry on disk; pinning it avoids a CUDA download.
TORCH ?= torch==2.13.0

.PHONY: serve test bench install install-dev install-gpu clean lint browser oip-venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,convert,train]"
	touch $(VENV)/.base $@

# A separate environment for the test Open Inference Protocol server (Seldon MLServer + ONNX Runtime):
# MLServer pins fastapi < 0.116, which the proxy's own environment must not be held to.
OIP_VENV := .venv-oip
$(OIP_VENV)/.ok:
	$(PY) -m venv $(OIP_VENV)
	$(OIP_VENV)/bin/pip install -q "mlserver==1.7.1" "onnxruntime>=1.18"
	touch $@

oip-venv: $(OIP_VENV)/.ok

install: $(VENV)/.base
install-dev: $(VENV)/.dev

# onnxruntime and onnxruntime-gpu overwrite each other: remove the CPU wheel, then add the GPU one.
install-gpu: $(VENV)/.base
	$(BIN)/pip uninstall -y onnxruntime
	$(BIN)/pip install -q "onnxruntime-gpu>=1.18"

serve: $(VENV)/.base
	$(BIN)/trustwall serve $(ARGS)

# Debian's chromium for the dashboard's browser test (Playwright drives it; no browser is downloaded).
# Quick when it is there already; installs it (as root, or with sudo) when it is not.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q --no-install-recommends chromium; \
	elif command -v sudo >/dev/null; then sudo apt-get update -q && sudo apt-get install -y -q --no-install-recommends chromium; \
	else echo "make browser: install Debian's chromium (apt-get install chromium) as root" >&2; exit 1; fi

test: $(VENV)/.dev browser $(OIP_VENV)/.ok
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(VENV)/.dev
	$(BIN)/python -m benchmarks.run_all $(ARGS)

lint: $(VENV)/.dev
	$(BIN)/python -m ruff check guardrails detectors tests benchmarks

clean:
	rm -rf $(VENV) $(OIP_VENV) .pytest_cache build *.egg-info
