"""The ASGI app: OpenAI- and TEI-compatible embeddings, and health. Served by Mangum in Lambda and
by uvicorn locally (`make run`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from embedding_engine.api import openai, search, tei
from embedding_engine.api.http import (
    Dialect,
    dialect_of,
    error_response,
    json_response,
    parse,
    read_json_object,
)
from embedding_engine.auth import ApiKeys
from embedding_engine.deadline import Deadline
from embedding_engine.engine import Engine
from embedding_engine.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RouteNotFoundError,
    ServiceError,
)
from embedding_engine.observability import logger
from embedding_engine.service import EmbeddingService
from embedding_engine.settings import ALB_PAYLOAD_BYTES, RESPONSE_ENVELOPE_BYTES

Endpoint = Callable[[Request], Awaitable[Response]]
# The blocking part of an endpoint (validation, tokenizing, the model, the store, JSON): it takes the
# request's JSON object, the response size limit and the deadline.
ModelWork = Callable[[dict[str, Any], int, Deadline], Response]
T = TypeVar("T")
# Time kept, before a request's deadline, to serialise and send the reply: this share of the
# request timeout, at most a second.
REPLY_RESERVE_SHARE, REPLY_RESERVE_MAX_SECONDS = 0.05, 1.0
ROUTES_HELP = "Routes: POST /v1/embeddings, POST /embed, POST /search, GET /health."


def create_app(engine: Engine, *, model_thread: Executor | None = None) -> Starlette:
    """Build the app around a started engine (the model is already loaded and warm).

    `model_thread` is where the model works. None (Lambda, and the default): inline, on the event
    loop's thread, which in Lambda is the thread that loaded and warmed the model during init (torch's
    thread pool is bound to it); a container serves one request at a time, and a worker-thread hop cost
    6-13 ms per request (`make bench`, README: Performance). The local server passes a one-thread
    executor warmed at start-up, so that the event loop (and /health) stays free while a request
    computes; requests queue for that thread."""
    settings = engine.settings
    service = EmbeddingService(engine.embedder, settings, max_total_tokens=engine.max_total_tokens)
    api_keys = ApiKeys.from_settings(settings)

    def guarded(endpoint: Endpoint, dialect: Dialect, *, public: bool = False) -> Endpoint:
        """Check the API key, and turn every error into the dialect's shape: never a bare 500."""

        async def run(request: Request) -> Response:
            try:
                if not public:
                    api_keys.check(request.headers.get("authorization"))
                return await endpoint(request)
            except ServiceError as error:
                return error_response(error, dialect)
            except ClientDisconnect:  # uvicorn only: nobody is left to read the reply
                logger.info("client disconnected", extra={"path": request.url.path})
                gone = MalformedRequestError("The client disconnected before sending the whole body.")
                return error_response(gone, dialect)
            except Exception:  # noqa: BLE001  (the request boundary: log it, answer 500, keep serving)
                logger.exception("unhandled error", extra={"path": request.url.path})
                return error_response(ServiceError("Internal error; it has been logged."), dialect)

        return run

    def model_endpoint(work: ModelWork) -> Endpoint:
        """Read the body on the event loop, then run `work` where the model runs. The deadline is
        taken from the request before any wait for the model thread: queueing counts against it."""

        async def endpoint(request: Request) -> Response:
            payload = await read_json_object(request, max_bytes=settings.max_request_bytes)
            limit, until = response_limit(request), deadline(request)
            return await run_model(model_thread, partial(work, payload, limit, until))

        return endpoint

    def deadline(request: Request) -> Deadline:
        """When this request's work must be done: within REQUEST_TIMEOUT_SECONDS (API Gateway's
        patience) and before Lambda's own deadline, with time kept to send the reply."""
        return Deadline.of_invocation(
            request.scope.get("aws.context"),
            limit_seconds=settings.request_timeout_seconds,
            reserve_seconds=min(
                REPLY_RESERVE_MAX_SECONDS, REPLY_RESERVE_SHARE * settings.request_timeout_seconds
            ),
        )

    def response_limit(request: Request) -> int:
        """Lambda's synchronous limit, or an ALB's smaller one when the event came through an ALB."""
        event = request.scope.get("aws.event")
        if isinstance(event, dict) and "elb" in event.get("requestContext", {}):
            return min(settings.max_response_bytes, ALB_PAYLOAD_BYTES - RESPONSE_ENVELOPE_BYTES)
        return settings.max_response_bytes

    async def health(request: Request) -> Response:
        return json_response(engine.health(), max_bytes=settings.max_response_bytes)

    embeddings = guarded(model_endpoint(partial(openai_embeddings, service)), Dialect.OPENAI)
    routes = [
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/embeddings", embeddings, methods=["POST"]),
        Route("/embed", guarded(model_endpoint(partial(tei_embed, service)), Dialect.TEI), methods=["POST"]),
        Route(
            "/search",
            guarded(model_endpoint(partial(search_chunks, engine)), Dialect.OPENAI),
            methods=["POST"],
        ),
        Route("/health", guarded(health, Dialect.OPENAI, public=True), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    # Starlette answers a trailing slash with a 307 whose Location is built from the Host header:
    # a redirect anywhere the caller likes. A wrong path is a 404 here, which names the right one.
    app.router.redirect_slashes = False
    return app


async def run_model(model_thread: Executor | None, work: Callable[[], T]) -> T:
    """`work` inline (on the event loop's thread), or on `model_thread` while the event loop waits."""
    if model_thread is None:
        return work()
    return await asyncio.get_running_loop().run_in_executor(model_thread, work)


def openai_embeddings(
    service: EmbeddingService, payload: dict[str, Any], limit: int, until: Deadline
) -> Response:
    body = parse(openai.EmbeddingsRequest, payload)
    content = openai.create_embeddings(body, service, max_response_bytes=limit, deadline=until)
    return json_response(content, max_bytes=limit)


def tei_embed(service: EmbeddingService, payload: dict[str, Any], limit: int, until: Deadline) -> Response:
    body = parse(tei.EmbedRequest, payload)
    vectors = tei.embed(body, service, max_response_bytes=limit, deadline=until)
    return json_response(vectors, max_bytes=limit)


def search_chunks(engine: Engine, payload: dict[str, Any], limit: int, until: Deadline) -> Response:
    body = parse(search.SearchRequest, payload)
    content = search.search(body, engine.embedder, engine.store, deadline=until)
    return json_response(content, max_bytes=limit)


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods, in the shape of the dialect the path belongs to."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    method, path = request.method, request.url.path
    error: ServiceError
    if status == 405:
        error = MethodNotAllowedError(f"{method} is not allowed on {path}.")
    elif status == 404:
        paths = [route.path for route in request.app.router.routes if isinstance(route, Route)]
        error = RouteNotFoundError(f"No route {method} {path}.{did_you_mean(path, paths)} {ROUTES_HELP}")
    else:
        error = ServiceError(f"HTTP {status} on {path}.")
    return error_response(error, dialect_of(path))


def did_you_mean(path: str, paths: Collection[str]) -> str:
    """A hint when `path` is a route with trailing slashes; "" otherwise."""
    route = path.rstrip("/")
    return f" Did you mean {route}, without the trailing slash?" if route != path and route in paths else ""
