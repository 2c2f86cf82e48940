"""HTTP events (API Gateway REST and HTTP APIs, Function URLs, ALB) through Mangum to the ASGI app."""

from __future__ import annotations

from typing import Any

from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway
from mangum.types import ASGI

# Function URL events use the HTTP API payload format 2.0, so HTTPGateway takes them.
HTTP_EVENT_HANDLERS = (APIGateway, HTTPGateway, ALB)


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
