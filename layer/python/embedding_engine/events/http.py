"""HTTP events (API Gateway REST and HTTP APIs, Function URLs, ALB) through Mangum to the ASGI app.

An event that cannot be read as a request of its source (invalid base64, a lone surrogate, a field of
the wrong type, no `requestContext.http`...: see `http_event.py`) gets a 400 in that source's reply
format, and is logged by shape, never by value."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway
from mangum.protocols import HTTPCycle
from mangum.types import ASGI, LambdaHandler, Scope

from embedding_engine.api.http import RESPONSE_LIMIT_KEY, error_response
from embedding_engine.api.routes import dialect_of
from embedding_engine.errors import MalformedRequestError
from embedding_engine.events import describe_event
from embedding_engine.events.http_event import (
    MalformedEventError,
    Source,
    event_problem,
    request_body,
    request_path,
    source_of,
    without_nulls,
)
from embedding_engine.observability import logger, metrics
from embedding_engine.settings import ALB_PAYLOAD_BYTES, RESPONSE_ENVELOPE_BYTES

WARMUP_REQUEST: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "POST /v1/embeddings",
    "rawPath": "/v1/embeddings",
    "rawQueryString": "",
    "headers": {"content-type": "application/json"},
    "requestContext": {
        "http": {"method": "POST", "path": "/v1/embeddings", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
        "requestId": "init-warm-up",
        "routeKey": "POST /v1/embeddings",
        "stage": "$default",
    },
    "body": '{"input": "init warm-up"}',
    "isBase64Encoded": False,
}


class HttpRequest:
    def __init__(self, app: ASGI) -> None:
        # lifespan="off": the model is loaded at import, and Mangum would run lifespan on every call.
        self.adapter = Mangum(app, lifespan="off")

    def infer(self, event: Any) -> bool:
        """Mangum's tests, made safe for any JSON: REST has `resource`, payload 2.0 `version`, ALB
        `requestContext.elb`; all of them have a `requestContext`."""
        if not isinstance(event, dict) or "requestContext" not in event:
            return False
        context = event["requestContext"]
        return "resource" in event or "version" in event or (isinstance(context, dict) and "elb" in context)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """What Mangum's own `__call__` does (lifespan off), with the event read and checked first."""
        source = source_of(event)
        readable = without_nulls(event, source)
        try:
            handler, scope, body = self._read(readable, context, source)
        except MalformedEventError as error:
            return refusal(event, source, str(error))
        return handler(HTTPCycle(scope, body)(self.adapter.app))

    def _read(
        self, event: dict[str, Any], context: Any, source: Source
    ) -> tuple[LambdaHandler, Scope, bytes]:
        problem = event_problem(event, source)
        if problem is not None:
            raise MalformedEventError(problem)
        body = request_body(event)
        handler_class = ALB if source is Source.ALB else HTTPGateway if "version" in event else APIGateway
        handler: LambdaHandler = handler_class(event, context, self.adapter.config)
        try:
            scope = handler.scope
        except ValueError:  # the only one left once the fields are checked: int() of the port
            raise MalformedEventError(
                "the `Host` or `X-Forwarded-Port` header does not hold a valid host and port"
            ) from None
        except (KeyError, TypeError, AttributeError) as exc:  # a shape no check foresaw
            logger.warning("unforeseen http event shape", extra={"error": type(exc).__name__})
            raise MalformedEventError("a field is missing or has the wrong type") from None
        if source is Source.ALB:  # an ALB takes at most 1 MB of response from a Lambda target
            scope[RESPONSE_LIMIT_KEY] = ALB_PAYLOAD_BYTES - RESPONSE_ENVELOPE_BYTES
        return handler, scope, body

    def warm_up(self) -> None:
        """One embeddings request through the whole HTTP path during init (Mangum, routing,
        validation, the model, JSON), so the first real request finds every code path warm. Its
        metrics are dropped: they would be published with the first real invocation's."""
        # No invocation yet, so no Lambda context to pass.
        response = self(WARMUP_REQUEST, None)
        metrics.clear_metrics()
        if response.get("statusCode") != 200:  # with API keys configured: 401, still mostly warm
            logger.info("http warm-up answered", extra={"status": response.get("statusCode")})


def refusal(event: dict[str, Any], source: Source, problem: str) -> dict[str, Any]:
    """The 400, in the reply format of the event's source; logged by the event's shape."""
    logger.warning(
        "malformed http event",
        extra={"event_shape": describe_event(event), "event_source": source.value, "problem": problem},
    )
    metrics.add_metric(name="MalformedHttpEvents", unit=MetricUnit.Count, value=1)
    error = MalformedRequestError(
        f"This {source.value} event cannot be read as an HTTP request: {problem}.", code="malformed_event"
    )
    body = bytes(error_response(error, dialect_of(request_path(event, source))).body).decode()
    headers = {"content-type": "application/json"}
    reply: dict[str, Any] = {"statusCode": 400, "headers": headers, "body": body, "isBase64Encoded": False}
    if source is Source.REST:
        reply["multiValueHeaders"] = {}
    elif source is Source.ALB:
        reply["statusDescription"] = "400 Bad Request"
        if event.get("multiValueHeaders") is not None:  # a target group with multi-value headers on
            reply["multiValueHeaders"] = {name: [value] for name, value in reply.pop("headers").items()}
    return reply
