"""A small, real AWS Lambda Runtime API (version 2018-06-01) for tests, on 127.0.0.1.

It serves the endpoints a runtime interface client such as `awslambdaric` uses: `GET
invocation/next` (blocks until an event is queued), `POST invocation/{id}/response`, `POST
invocation/{id}/error` and `POST init/error`, each answered as Lambda documents it. It records what
the runtime posts, and when the runtime first asked for an event: that is the end of its init.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:embeddings-api"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_INVOCATION_POST = re.compile(rf"^{PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")


@dataclass(frozen=True)
class Posted:
    """A body the runtime posted, with its `Lambda-Runtime-Function-Error-Type` header (errors only)."""

    body: bytes
    error_type: str | None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Result(Posted):
    """The outcome of one invocation: its response (`ok`) or the error the runtime reported."""

    request_id: str
    ok: bool


@dataclass(frozen=True)
class _Invocation:
    request_id: str
    body: bytes
    deadline_ms: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: RuntimeApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection reset is the runtime process being killed at teardown: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client's libcurl expects
    # Each reply goes out in two sends (headers, then body): with Nagle's algorithm on, the runtime
    # client's delayed ACKs would stall every invocation by ~40 ms twice. Lambda's own API does not.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(HTTPStatus.NOT_FOUND, "NotFound", self.path)
            return
        invocation = self.server.api._next_invocation()
        if invocation is None:  # the API is closing
            self.close_connection = True
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, "Closing", "The Runtime API is closing.")
            return
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        }
        self._send(HTTPStatus.OK, invocation.body, headers)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        error_type = self.headers.get(ERROR_TYPE_HEADER)
        match = _INVOCATION_POST.match(self.path)
        if self.path == f"{PREFIX}/init/error":
            self.server.api._record_init_error(Posted(body, error_type))
        elif match is None:
            self._reply(HTTPStatus.NOT_FOUND, "NotFound", self.path)
            return
        else:
            ok = match["kind"] == "response"
            result = Result(body, None if ok else error_type, request_id=match["id"], ok=ok)
            if not self.server.api._record_result(result):
                message = f"Request ID {match['id']!r} is unknown or already answered."
                self._reply(HTTPStatus.BAD_REQUEST, "InvalidRequestID", message)
                return
        self._reply(HTTPStatus.ACCEPTED)

    def _reply(self, status: HTTPStatus, error_type: str | None = None, message: str = "") -> None:
        payload = {"errorType": error_type, "errorMessage": message} if error_type else {"status": "OK"}
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the runtime went away (killed at teardown): nothing to tell it
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the runtime's own log is what the tests read."""


class RuntimeApi:
    """The Runtime API server, served from a background thread while the context is open.

    `on_first_next` runs in the server when the first `GET invocation/next` arrives, before the
    runtime receives any event: the moment the runtime's init is over.
    """

    def __init__(self, on_first_next: Callable[[], None] | None = None) -> None:
        self._on_first_next = on_first_next
        self._events: queue.Queue[_Invocation | None] = queue.Queue()
        self._changed = threading.Condition()
        self._pending: set[str] = set()
        self._results: dict[str, Result] = {}
        self._init_error: Posted | None = None
        self._aborted: str | None = None
        self.first_next_at: float | None = None
        """`time.monotonic()` at the first `next` request, or None while there has been none."""
        self.next_requests = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        """`host:port`, the value for `AWS_LAMBDA_RUNTIME_API`."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving: release any blocked `next` request, then shut the server down."""
        self.abort("the Runtime API is closed")
        self._events.put(None)
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def abort(self, reason: str) -> None:
        """Wake every waiter with `reason` (e.g. the runtime process exited): nothing more will come."""
        with self._changed:
            self._aborted = self._aborted or reason
            self._changed.notify_all()

    def invoke(self, event: Any, timeout: float = 120.0) -> Result:
        """Queue `event` for the runtime, and wait for its response or error."""
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + timeout) * 1000)
        with self._changed:
            self._pending.add(request_id)
        self._events.put(_Invocation(request_id, json.dumps(event).encode(), deadline_ms))
        with self._changed:
            self._changed.wait_for(lambda: request_id in self._results or self._aborted, timeout)
            if request_id in self._results:
                return self._results[request_id]
            raise self._gave_up(f"invocation {request_id}: no response", timeout)

    def wait_for_init_error(self, timeout: float = 120.0) -> Posted:
        """Wait for the runtime to post to `init/error`, and return what it posted."""
        with self._changed:
            self._changed.wait_for(lambda: self._init_error is not None or self._aborted, timeout)
            if self._init_error is not None:
                return self._init_error
            raise self._gave_up("no init error", timeout)

    def _gave_up(self, what: str, timeout: float) -> Exception:
        if self._aborted:
            return RuntimeError(f"{what}: {self._aborted}")
        return TimeoutError(f"{what} within {timeout} s")

    def _next_invocation(self) -> _Invocation | None:
        with self._changed:
            self.next_requests += 1
            first = self.first_next_at is None
            if first:
                self.first_next_at = time.monotonic()
        if first and self._on_first_next is not None:
            self._on_first_next()
        invocation = self._events.get()
        if invocation is None:
            self._events.put(None)  # for any other waiting `next`
        return invocation

    def _record_result(self, result: Result) -> bool:
        with self._changed:
            if result.request_id not in self._pending:
                return False
            self._pending.discard(result.request_id)
            self._results[result.request_id] = result
            self._changed.notify_all()
            return True

    def _record_init_error(self, posted: Posted) -> None:
        with self._changed:
            self._init_error = posted
            self._changed.notify_all()


REPO = Path(__file__).resolve().parents[1]
FUNCTION_DIR = REPO / "function"  # LAMBDA_TASK_ROOT in the image
LAYER_DIR = REPO / "layer" / "python"  # /opt/python in the image
# Not inherited from the caller's environment: Lambda's process starts without them (POWERTOOLS_
# too, so the function logs at Powertools' defaults, as in Lambda).
NOT_INHERITED = (
    *("AWS_", "LAMBDA_", "_LAMBDA_", "_HANDLER", "MODEL_", "API_KEYS", "STRICT_MODEL", "PYTHON"),
    *("POWERTOOLS_", "DATABASE_", "BACKEND", "DEFER_IMPORTS", "TORCH_NUM_THREADS"),
)
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def inherited_environment() -> dict[str, str]:
    """This process's environment without what a function's process would not get (NOT_INHERITED,
    proxies); coverage's variables stay, so that subprocesses are measured too."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(NOT_INHERITED) and name.lower() not in PROXIES
    }


def lambda_variables(runtime_api: str, *, memory_mb: int = 2048) -> dict[str, str]:
    """The variables Lambda sets for a function's process, with this Runtime API."""
    return {
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": "embeddings-api",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/embeddings-api",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/25/[$LATEST]0123456789abcdef",
        "AWS_REGION": "us-east-1",
    }


def lambda_environment(
    runtime_api: str, *, handler: str, pythonpath: Sequence[Path] = (LAYER_DIR,), **overrides: str
) -> dict[str, str]:
    """What Lambda gives a function's process (run it with cwd FUNCTION_DIR), with this Runtime API
    and no network: the layer on PYTHONPATH, as /opt/python is in the image."""
    env = inherited_environment()
    env.update(
        lambda_variables(runtime_api),
        LAMBDA_TASK_ROOT=str(FUNCTION_DIR),
        _HANDLER=handler,
        PYTHONPATH=os.pathsep.join(str(path) for path in pythonpath),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
    )
    env.update(overrides)
    return env
