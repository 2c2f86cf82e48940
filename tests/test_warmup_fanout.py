"""Warm-up fan-out: a ping with `concurrency: N` invokes its own alias N-1 times at once, through the
Lambda Invoke API (served here on loopback by a small server that runs the real handler)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from embedding_engine.events.warmup import WarmupPing
from embedding_engine.events.warmup_fanout import MAX_WARMUP_CONCURRENCY, FanOut, requested_concurrency
from helpers import FakeLambdaContext

ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:embeddings-api:live"


class LambdaInvokeApi(ThreadingHTTPServer):
    """`POST /2015-03-31/functions/{name}/invocations`, answered by `handler` once `parties`
    invocations are in flight together (a barrier: it proves the fan-out is parallel)."""

    def __init__(self, handler: Any, parties: int, fail_every: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Invocation)
        self.handler = handler
        self.barrier = threading.Barrier(parties, timeout=60)
        self.fail_every = fail_every
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Invocation(BaseHTTPRequestHandler):
    server: LambdaInvokeApi

    def do_POST(self) -> None:
        name = unquote(self.path.split("/functions/", 1)[1].split("/invocations", 1)[0])
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.calls.append((name, payload))
            number = len(self.server.calls)
        self.server.barrier.wait()
        headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "7"}
        if self.server.fail_every and number % self.server.fail_every == 0:
            body: Any = {"errorMessage": "boom", "errorType": "RuntimeError"}
            headers["X-Amz-Function-Error"] = "Unhandled"
        else:
            body = self.server.handler(payload, FakeLambdaContext(invoked_function_arn=name))
        data = json.dumps(body).encode()
        self.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def lambda_api(
    monkeypatch: pytest.MonkeyPatch, handler_module: Any, request: Any
) -> Iterator[LambdaInvokeApi]:
    parties, fail_every = request.param
    server = LambdaInvokeApi(handler_module.lambda_handler, parties, fail_every)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield server
    finally:
        server.barrier.abort()
        server.shutdown()
        server.server_close()


def ping(engine: Any, event: dict[str, Any]) -> dict[str, Any]:
    context = FakeLambdaContext(invoked_function_arn=ALIAS_ARN)
    return WarmupPing(engine.embedder, engine.state, FanOut())(event, context)


@pytest.mark.parametrize("lambda_api", [(3, 0)], indirect=True)
def test_a_ping_for_four_containers_invokes_the_alias_three_times_at_once(
    engine: Any, lambda_api: LambdaInvokeApi
) -> None:
    reply = ping(engine, {"warmup": True, "concurrency": 4, "hold_ms": 20})

    assert reply["warm"] is True
    # Served in-process here, every ping reaches this one container; in Lambda, the hold spreads them.
    assert reply["fanout"] == {"invoked": 3, "succeeded": 3, "warm_containers": 1}
    assert [name for name, _ in lambda_api.calls] == [ALIAS_ARN] * 3
    assert all(payload == {"warmup": True, "fanout": True, "hold_ms": 20} for _, payload in lambda_api.calls)


@pytest.mark.parametrize("lambda_api", [(2, 2)], indirect=True)
def test_failed_fan_out_pings_are_counted_not_raised(engine: Any, lambda_api: LambdaInvokeApi) -> None:
    reply = ping(engine, {"warmup": True, "concurrency": 3, "hold_ms": 0})
    assert reply["fanout"] == {"invoked": 2, "succeeded": 1, "warm_containers": 1}


def test_an_unreachable_invoke_api_leaves_the_ping_answered(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reply = ping(engine, {"warmup": True, "concurrency": 2})
    assert reply["warm"] is True
    assert reply["fanout"] == {"invoked": 1, "succeeded": 0, "warm_containers": 1}


def test_a_fan_out_ping_holds_and_does_not_fan_out_again(engine: Any) -> None:
    reply = ping(engine, {"warmup": True, "fanout": True, "concurrency": 9, "hold_ms": 0})
    assert "fanout" not in reply
    assert reply["container_id"] == engine.state.container_id


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"warmup": True}, 1),
        ({"warmup": True, "concurrency": 5}, 5),
        ({"warmup": True, "concurrency": 0}, 1),
        ({"warmup": True, "concurrency": 10_000}, MAX_WARMUP_CONCURRENCY),
        ({"warmup": True, "concurrency": "5"}, 1),
        ({"warmup": True, "concurrency": True}, 1),
    ],
)
def test_requested_concurrency_is_clamped(event: dict[str, Any], expected: int) -> None:
    assert requested_concurrency(event) == expected
