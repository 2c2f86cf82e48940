"""HTTP events (API Gateway REST and HTTP APIs, Function URLs, ALB) through Mangum to the ASGI app."""

from __future__ import annotations

from typing import Any

from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway
from mangum.types import ASGI

from embedding_engine.observability import logger, metrics

# Function URL events use the HTTP API payload format 2.0, so HTTPGateway takes them.
HTTP_EVENT_HANDLERS = (APIGateway, HTTPGateway, ALB)
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
        return isinstance(event, dict) and any(
            handler.infer(event, None, self.adapter.config)  # type: ignore[arg-type]
            for handler in HTTP_EVENT_HANDLERS
        )

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        return self.adapter(event, context)

    def warm_up(self) -> None:
        """One embeddings request through the whole HTTP path during init (Mangum, routing,
        validation, the model, JSON), so the first real request finds every code path warm. Its
        metrics are dropped: they would be published with the first real invocation's."""
        # No invocation yet, so no Lambda context to pass.
        response = self.adapter(WARMUP_REQUEST, None)  # type: ignore[arg-type]
        metrics.clear_metrics()
        if response.get("statusCode") != 200:  # with API keys configured: 401, still mostly warm
            logger.info("http warm-up answered", extra={"status": response.get("statusCode")})
