"""Warm-up fan-out: one scheduled ping keeps N containers warm, as serverless-plugin-warmup does.

The pinged container invokes its own alias N-1 times in parallel; each of those pings holds its
container briefly, so that Lambda cannot answer two of them with the same container.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from embedding_engine.observability import logger

MAX_WARMUP_CONCURRENCY = 50
DEFAULT_HOLD_MS = 250
MAX_HOLD_MS = 5000


def requested_concurrency(event: dict[str, Any]) -> int:
    """The `concurrency` a ping asks for, clamped to 1..MAX_WARMUP_CONCURRENCY (1 when absent)."""
    return _bounded_integer(event, "concurrency", default=1, low=1, high=MAX_WARMUP_CONCURRENCY)


def hold_ms(event: dict[str, Any]) -> int:
    """How long each fanned-out ping holds its container, clamped to 0..MAX_HOLD_MS."""
    return _bounded_integer(event, "hold_ms", default=DEFAULT_HOLD_MS, low=0, high=MAX_HOLD_MS)


def _bounded_integer(event: dict[str, Any], name: str, *, default: int, low: int, high: int) -> int:
    value = event.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        logger.warning(f"warm-up {name} ignored: not an integer", extra={name: str(value)[:20]})
        return default
    return max(low, min(value, high))


class FanOut:
    """Invokes a function's alias in parallel with warm-up pings (the Lambda Invoke API via boto3,
    which honours AWS_ENDPOINT_URL)."""

    def __init__(self) -> None:
        self._client: Any = None

    def __call__(self, function_arn: str, count: int, *, hold: int) -> dict[str, Any]:
        """Invoke `function_arn` `count` times at once; what came back, by container."""
        payload = json.dumps({"warmup": True, "fanout": True, "hold_ms": hold}).encode()
        with ThreadPoolExecutor(max_workers=count) as pool:
            replies = list(pool.map(lambda _: self._invoke(function_arn, payload), range(count)))
        answered = [reply for reply in replies if reply is not None]
        return {
            "invoked": count,
            "succeeded": len(answered),
            "containers": sorted({str(reply.get("container_id")) for reply in answered}),
        }

    def _invoke(self, function_arn: str, payload: bytes) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._lambda().invoke(
                FunctionName=function_arn, InvocationType="RequestResponse", Payload=payload
            )
            body = json.loads(response["Payload"].read() or b"null")
        except (BotoCoreError, ClientError, ValueError) as exc:
            logger.warning("warm-up fan-out invocation failed", extra={"error": type(exc).__name__})
            return None
        if response.get("FunctionError") or not isinstance(body, dict):
            logger.warning(
                "warm-up fan-out ping failed", extra={"function_error": response.get("FunctionError")}
            )
            return None
        return body

    def _lambda(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Enough connections for every parallel ping; no retries (the next schedule tick retries).
            config = Config(max_pool_connections=MAX_WARMUP_CONCURRENCY, retries={"max_attempts": 1})
            self._client = boto3.client("lambda", config=config)
        return self._client
