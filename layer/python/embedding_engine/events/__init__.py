"""One module per event source. Each route says whether it takes an event (`infer`) and handles it."""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from embedding_engine.errors import UnsupportedEventError
from embedding_engine.observability import logger, metrics


class EventRoute(Protocol):
    def infer(self, event: Any) -> bool:
        """True when this route handles `event`."""
        ...

    def __call__(self, event: Any, context: Any) -> Any: ...


def dispatch(event: Any, context: Any, routes: tuple[EventRoute, ...]) -> Any:
    """Hand `event` to the first route that takes it; refuse anything else, clearly."""
    for route in routes:
        if route.infer(event):
            return route(event, context)
    shape = describe_event(event)
    logger.warning("unsupported event", extra={"event_shape": shape})
    metrics.add_metric(name="UnsupportedEvents", unit=MetricUnit.Count, value=1)
    raise UnsupportedEventError(
        f"Unsupported event: {shape}. This function takes API Gateway (REST or HTTP API), ALB and "
        'Function URL requests, warm-up pings ({"warmup": true} or an EventBridge "Scheduled Event"), '
        "S3/SQS document records, and S3 Batch Operations tasks."
    )


def describe_event(event: Any) -> str:
    """The shape of an event, never its values (they may hold document text)."""
    if isinstance(event, dict):
        keys = sorted(str(key) for key in event)
        listed = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        return f"a JSON object with keys [{listed}]" if keys else "an empty JSON object"
    names = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean", type(None): "null"}
    return names.get(type(event), "a JSON number")  # int or float: what else json.loads returns
