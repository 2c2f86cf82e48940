"""The ASGI app: OpenAI- and TEI-compatible embeddings, and health. Served by Mangum in Lambda and
by uvicorn locally (`make run`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from embedding_engine.api import openai, search, tei
from embedding_engine.api.http import Dialect, error_response, json_response, parse, read_json_object
from embedding_engine.auth import ApiKeys
from embedding_engine.deadline import Deadline
from embedding_engine.engine import Engine
from embedding_engine.errors import MethodNotAllowedError, RouteNotFoundError, ServiceError
from embedding_engine.observability import logger
from embedding_engine.service import EmbeddingService
from embedding_engine.settings import ALB_PAYLOAD_BYTES, RESPONSE_ENVELOPE_BYTES

Endpoint = Callable[[Request], Awaitable[Response]]
# Time kept, before a request's deadline, to serialise and send the reply: this share of the
# request timeout, at most a second.
REPLY_RESERVE_SHARE, REPLY_RESERVE_MAX_SECONDS = 0.05, 1.0


def create_app(engine: Engine) -> Starlette:
    """Build the app around a started engine (the model is already loaded and warm)."""
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
            except Exception:  # noqa: BLE001  (the request boundary: log it, answer 500, keep serving)
                logger.exception("unhandled error", extra={"path": request.url.path})
                return error_response(ServiceError("Internal error; it has been logged."), dialect)

        return run

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

    # The model runs inline, on the event loop's thread: in Lambda that is the thread that loaded and
    # warmed it during init (torch's thread pool is bound to it), and a container serves one request
    # at a time. A worker-thread hop cost 6-13 ms per request (`make bench`, README: Performance).
    async def openai_embeddings(request: Request) -> Response:
        payload = await read_json_object(request, max_bytes=settings.max_request_bytes)
        body = parse(openai.EmbeddingsRequest, payload)
        limit = response_limit(request)
        content = openai.create_embeddings(
            body, service, max_response_bytes=limit, deadline=deadline(request)
        )
        return json_response(content, max_bytes=limit)

    async def tei_embed(request: Request) -> Response:
        payload = await read_json_object(request, max_bytes=settings.max_request_bytes)
        body = parse(tei.EmbedRequest, payload)
        limit = response_limit(request)
        vectors = tei.embed(body, service, max_response_bytes=limit, deadline=deadline(request))
        return json_response(vectors, max_bytes=limit)

    async def search_chunks(request: Request) -> Response:
        payload = await read_json_object(request, max_bytes=settings.max_request_bytes)
        body = parse(search.SearchRequest, payload)
        content = search.search(body, engine.embedder, engine.store, deadline=deadline(request))
        return json_response(content, max_bytes=response_limit(request))

    async def health(request: Request) -> Response:
        return json_response(engine.health(), max_bytes=settings.max_response_bytes)

    async def http_error(request: Request, exc: Exception) -> Response:
        """Unknown routes and wrong methods, in the shape of the dialect the path belongs to."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        method, path = request.method, request.url.path
        error: ServiceError
        if status == 405:
            error = MethodNotAllowedError(f"{method} is not allowed on {path}.")
        elif status == 404:
            error = RouteNotFoundError(
                f"No route {method} {path}. Routes: POST /v1/embeddings, POST /embed, POST /search, "
                "GET /health."
            )
        else:
            error = ServiceError(f"HTTP {status} on {path}.")
        dialect = Dialect.TEI if path.rstrip("/") == "/embed" else Dialect.OPENAI
        return error_response(error, dialect)

    routes = [
        Route("/v1/embeddings", guarded(openai_embeddings, Dialect.OPENAI), methods=["POST"]),
        Route("/embeddings", guarded(openai_embeddings, Dialect.OPENAI), methods=["POST"]),
        Route("/embed", guarded(tei_embed, Dialect.TEI), methods=["POST"]),
        Route("/search", guarded(search_chunks, Dialect.OPENAI), methods=["POST"]),
        Route("/health", guarded(health, Dialect.OPENAI, public=True), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
