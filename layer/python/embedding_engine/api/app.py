"""The ASGI app: the routes of `routes.py` on Starlette, around a started engine. Served by Mangum in
Lambda (`events/http.py`) and by uvicorn locally (`python -m embedding_engine serve`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from embedding_engine.api import docs, openai, search, tei
from embedding_engine.api.http import (
    RESPONSE_LIMIT_KEY,
    error_response,
    json_response,
    parse,
    read_json_object,
)
from embedding_engine.api.routes import ROUTES, ROUTES_HELP, RouteSpec, dialect_of, route_at
from embedding_engine.auth import ApiKeys
from embedding_engine.deadline import Deadline
from embedding_engine.engine import Engine
from embedding_engine.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RouteNotFoundError,
    ServiceError,
)
from embedding_engine.health import health_report
from embedding_engine.observability import logger
from embedding_engine.service import EmbeddingService
from embedding_engine.settings import Settings

Endpoint = Callable[[Request], Awaitable[Response]]
RequestT = TypeVar("RequestT", bound=BaseModel)
T = TypeVar("T")
# The blocking part of an endpoint (validation, tokenizing, the model, the store): it takes the parsed
# request, the response size limit and the deadline, and returns what becomes the JSON response.
Work = Callable[[RequestT, int, Deadline], Any]
# Time kept, before a request's deadline, to serialise and send the reply: this share of the
# request timeout, at most a second.
REPLY_RESERVE_SHARE, REPLY_RESERVE_MAX_SECONDS = 0.05, 1.0


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
    model_endpoint = partial(ModelEndpoint, settings, model_thread)
    endpoints: dict[str, Endpoint] = {
        "embeddings": model_endpoint(openai.EmbeddingsRequest, partial(openai_embeddings, service)),
        "embed": model_endpoint(tei.EmbedRequest, partial(tei_embed, service)),
        "search": model_endpoint(search.SearchRequest, partial(search_chunks, engine)),
        "health": partial(health, engine),
    }
    # /openapi.json publishes the very models the endpoints validate with.
    request_models: dict[str, type[BaseModel]] = {
        name: e.request_type for name, e in endpoints.items() if isinstance(e, ModelEndpoint)
    }
    endpoints.update(docs.endpoints(settings, request_models))
    routes = [
        Route(spec.path, guarded(endpoints[spec.endpoint], spec, api_keys, settings), methods=[spec.method])
        for spec in ROUTES
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    # Starlette answers a trailing slash with a 307 whose Location is built from the Host header:
    # a redirect anywhere the caller likes. A wrong path is a 404 here, which names the right one.
    app.router.redirect_slashes = False
    return app


def guarded(endpoint: Endpoint, spec: RouteSpec, api_keys: ApiKeys, settings: Settings) -> Endpoint:
    """Check the API key (unless the route is open to all), and turn every error into the route's
    dialect: never a bare 500."""
    open_to_all = spec.open_to_all(settings)

    async def run(request: Request) -> Response:
        try:
            if not open_to_all:
                api_keys.check(request.headers.get("authorization"))
            return await endpoint(request)
        except ServiceError as error:
            return error_response(error, spec.dialect)
        except ClientDisconnect:  # uvicorn only: nobody is left to read the reply
            logger.info("client disconnected", extra={"path": request.url.path})
            gone = MalformedRequestError("The client disconnected before sending the whole body.")
            return error_response(gone, spec.dialect)
        except Exception:  # noqa: BLE001  (the request boundary: log it, answer 500, keep serving)
            logger.exception("unhandled error", extra={"path": request.url.path})
            return error_response(ServiceError("Internal error; it has been logged."), spec.dialect)

    return run


class ModelEndpoint:
    """An endpoint that parses its request type and runs `work` where the model runs. The body is
    read on the event loop; the deadline is taken before any wait for the model thread, so queueing
    counts against it."""

    def __init__(
        self,
        settings: Settings,
        model_thread: Executor | None,
        request_type: type[RequestT],
        work: Work[RequestT],
    ) -> None:
        self.settings, self.model_thread = settings, model_thread
        self.request_type, self.work = request_type, work

    async def __call__(self, request: Request) -> Response:
        payload = await read_json_object(request, max_bytes=self.settings.max_request_bytes)
        limit = min(
            self.settings.max_response_bytes,
            request.scope.get(RESPONSE_LIMIT_KEY, self.settings.max_response_bytes),
        )
        until = Deadline.of_invocation(
            request.scope.get("aws.context"),
            limit_seconds=self.settings.request_timeout_seconds,
            reserve_seconds=min(
                REPLY_RESERVE_MAX_SECONDS, REPLY_RESERVE_SHARE * self.settings.request_timeout_seconds
            ),
        )
        return await run_model(self.model_thread, partial(self._respond, payload, limit, until))

    def _respond(self, payload: dict[str, Any], limit: int, until: Deadline) -> Response:
        content = self.work(parse(self.request_type, payload), limit, until)
        return json_response(content, max_bytes=limit)


async def run_model(model_thread: Executor | None, work: Callable[[], T]) -> T:
    """`work` inline (on the event loop's thread), or on `model_thread` while the event loop waits."""
    if model_thread is None:
        return work()
    return await asyncio.get_running_loop().run_in_executor(model_thread, work)


def openai_embeddings(
    service: EmbeddingService, body: openai.EmbeddingsRequest, limit: int, until: Deadline
) -> dict[str, Any]:
    return openai.create_embeddings(body, service, max_response_bytes=limit, deadline=until)


def tei_embed(service: EmbeddingService, body: tei.EmbedRequest, limit: int, until: Deadline) -> Any:
    return tei.embed(body, service, max_response_bytes=limit, deadline=until)


def search_chunks(engine: Engine, body: search.SearchRequest, limit: int, until: Deadline) -> dict[str, Any]:
    return search.search(body, engine.embedder, engine.store, deadline=until)


async def health(engine: Engine, request: Request) -> Response:
    return json_response(health_report(engine), max_bytes=engine.settings.max_response_bytes)


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods, in the dialect of the route the path names."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    method, path = request.method, request.url.path
    error: ServiceError
    if status == 405:
        error = MethodNotAllowedError(f"{method} is not allowed on {path}.")
    elif status == 404:
        route = route_at(path)
        hint = f" Did you mean {route.path}, without the trailing slash?" if route is not None else ""
        error = RouteNotFoundError(f"No route {method} {path}.{hint} {ROUTES_HELP}")
    else:
        error = ServiceError(f"HTTP {status} on {path}.")
    return error_response(error, dialect_of(path))
