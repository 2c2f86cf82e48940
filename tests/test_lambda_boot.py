"""The function booted as Lambda boots the image: the real runtime interface client (`awslambdaric`)
in its own process, talking HTTP to a local Runtime API (`runtime_api.RuntimeApi`).

This is what the in-process tests cannot show: that importing `handler` inside the runtime client
is the init phase (the model is loaded before the runtime asks for its first event), that the
events arrive as the runtime delivers them and the replies go back through the Runtime API, and
that a bad configuration fails init itself, reported to `init/error`, instead of a later invocation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import load_event, log_records
from runtime_api import FUNCTION_DIR, Result, RuntimeApi, lambda_environment

HANDLER = "handler.lambda_handler"
CEILING = 120.0  # seconds: a generous ceiling on anything that waits, never an expectation of speed


@dataclass
class LambdaProcess:
    """A runtime client process, its Runtime API, and its log (stdout and stderr)."""

    api: RuntimeApi
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    log_at_first_next: list[str] = field(default_factory=list)

    def log(self) -> str:
        return read_log(self.log_path)

    def invoke(self, event: Any) -> Result:
        return self.api.invoke(event, timeout=CEILING)


def read_log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def lambda_process(log_path: Path, **env_overrides: str) -> Iterator[LambdaProcess]:
    """Run `python -m awslambdaric handler.lambda_handler` as the image's entry point does; kill it
    on exit. When the process exits, the Runtime API's waiters are woken rather than left to time out."""
    snapshot: list[str] = []
    with (
        log_path.open("wb") as log_file,
        RuntimeApi(on_first_next=lambda: snapshot.append(read_log(log_path))) as api,
    ):
        started_at = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", HANDLER],
            cwd=FUNCTION_DIR,
            env={**lambda_environment(api.address, handler=HANDLER), **env_overrides},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

        def report_exit() -> None:
            api.abort(f"the runtime process exited with code {process.wait()}; log: {log_path}")

        watcher = threading.Thread(target=report_exit, name="runtime-exit-watcher", daemon=True)
        watcher.start()
        try:
            yield LambdaProcess(api, process, log_path, started_at, snapshot)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=CEILING)
            watcher.join(timeout=CEILING)


def messages(text: str) -> list[str]:
    return [str(record.get("message")) for record in log_records(text)]


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LambdaProcess, Result]]:
    """One function process for the module, and the reply to its very first invocation (a warm-up
    ping), taken here so that no test depends on the order the others run in."""
    log_path = tmp_path_factory.mktemp("lambda") / "function.log"
    with lambda_process(log_path) as function:
        first = function.invoke(load_event("warmup_schedule_input"))
        yield function, first


def test_init_loads_the_model_before_the_runtime_asks_for_an_event(
    booted: tuple[LambdaProcess, Result],
) -> None:
    function, _ = booted
    assert function.api.first_next_at is not None
    assert function.api.first_next_at > function.started_at
    # The log as it stood when the first `next` request arrived: init had finished, model and all.
    (log_then,) = function.log_at_first_next
    init_messages = messages(log_then)
    assert "model ready" in init_messages, log_then
    assert "init complete" in init_messages, log_then
    assert init_messages.index("model ready") < init_messages.index("init complete")
    init_record = next(r for r in log_records(log_then) if r.get("message") == "init complete")
    assert init_record["load_strategy"]  # the name of the strategy that loaded the model
    assert init_record["timings_ms"]["total"] > 0
    # Init happened once: later invocations did not load the model again.
    assert messages(function.log()).count("model ready") == 1


def test_first_invocation_is_the_warmup_ping_on_a_cold_container(
    booted: tuple[LambdaProcess, Result],
) -> None:
    _, first = booted
    assert first.ok, first.body
    reply = first.json()
    assert reply["warm"] is True
    assert reply["first_invocation"] is True
    assert reply["invocations"] == 1
    assert reply["cold_start"] is True
    assert reply["initialization_type"] == "on-demand"
    assert reply["model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_http_api_v2_embeddings_request_through_the_runtime(booted: tuple[LambdaProcess, Result]) -> None:
    function, _ = booted
    result = function.invoke(load_event("apigw_http_v2"))
    assert result.ok, result.body
    reply = result.json()
    assert reply["statusCode"] == 200, reply
    body = json.loads(reply["body"])
    assert body["object"] == "list"
    (item,) = body["data"]
    assert len(item["embedding"]) == 384
    assert any(value != 0 for value in item["embedding"])


def test_later_invocations_are_not_first(booted: tuple[LambdaProcess, Result]) -> None:
    function, _ = booted
    ping = function.invoke({"warmup": True})
    assert ping.ok, ping.body
    reply = ping.json()
    assert reply["warm"] is True
    assert reply["first_invocation"] is False
    assert reply["invocations"] >= 2
    health = function.invoke(load_event("apigw_http_v2_health"))
    assert health.ok, health.body
    status = json.loads(health.json()["body"])
    assert status["status"] == "ok"
    assert status["invocations"] > reply["invocations"]


def test_unsupported_event_is_an_invocation_error_and_the_runtime_keeps_serving(
    booted: tuple[LambdaProcess, Result],
) -> None:
    function, _ = booted
    failed = function.invoke({"foo": 1})
    assert not failed.ok
    error = failed.json()
    assert error["errorType"] == "UnsupportedEventError"
    assert "Unsupported event: a JSON object with keys [foo]" in error["errorMessage"]
    assert error["requestId"] == failed.request_id
    # The warning was logged inside that invocation, with its request id from the Runtime API.
    warnings = [r for r in log_records(function.log()) if r.get("message") == "unsupported event"]
    assert warnings[-1]["function_request_id"] == failed.request_id

    after = function.invoke({"warmup": True})
    assert after.ok, after.body
    assert after.json()["warm"] is True
    assert function.process.poll() is None


@pytest.mark.parametrize("model_path", ["/nonexistent", "empty folder"])
def test_bad_model_path_fails_init_not_an_invocation(tmp_path: Path, model_path: str) -> None:
    if model_path == "empty folder":
        model_path = str(tmp_path / "no-model")
        Path(model_path).mkdir()
    with lambda_process(tmp_path / "function.log", MODEL_PATH=model_path) as function:
        init_error = function.api.wait_for_init_error(timeout=CEILING)
        returncode = function.process.wait(timeout=CEILING)
        log = function.log()
    assert init_error.error_type is not None
    assert "SettingsError" in init_error.error_type
    error = init_error.json()
    assert error["errorType"] == "SettingsError"
    assert f"MODEL_PATH={model_path!r}" in error["errorMessage"]
    assert returncode != 0, log
    # The runtime never asked for an event: nothing was ever served from this container.
    assert function.api.first_next_at is None
    assert function.api.next_requests == 0
    assert "model ready" not in messages(log)
