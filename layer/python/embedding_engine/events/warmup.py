"""Warm-up pings: answered at once from the warm model, without the HTTP stack."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from embedding_engine.clock import elapsed_ms
from embedding_engine.container import ContainerState
from embedding_engine.embedder import Embedder
from embedding_engine.events.warmup_fanout import FanOut, hold_ms, requested_concurrency
from embedding_engine.observability import metrics

WARMUP_PLUGIN_SOURCE = "serverless-plugin-warmup"
PING_TEXT = "warm-up ping"


def is_warmup_ping(event: Any) -> bool:
    """Our schedule's input (`{"warmup": true, ...}`), a bare EventBridge "Scheduled Event"
    (a rule with no input: this function has no other scheduled duty), or serverless-plugin-warmup."""
    if not isinstance(event, dict):
        return False
    if event.get("warmup") is True:
        return True
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        return True
    return event.get("source") == WARMUP_PLUGIN_SOURCE


class WarmupPing:
    def __init__(self, embedder: Embedder, state: ContainerState, fan_out: FanOut | None = None) -> None:
        self.embedder, self.state = embedder, state
        self.fan_out = fan_out or FanOut()

    def infer(self, event: Any) -> bool:
        return is_warmup_ping(event)

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        self.embedder.embed([PING_TEXT])
        metrics.add_metric(name="WarmupPings", unit=MetricUnit.Count, value=1)
        state = self.state
        reply: dict[str, Any] = {
            "warm": True,
            "model": self.embedder.model_id,
            "container_id": state.container_id,
            "first_invocation": state.invocations == 1,
            "cold_start": state.cold_start,
            "initialization_type": state.initialization_type,
            "uptime_seconds": state.uptime_seconds,
            "invocations": state.invocations,
            "encode_ms": elapsed_ms(started, digits=2),
        }
        if not isinstance(event, dict) or event.get("warmup") is not True:
            return reply
        if event.get("fanout") is True:
            # One of a fan-out's pings: stay busy so the others must land on other containers.
            time.sleep(hold_ms(event) / 1000)
            return reply
        concurrency = requested_concurrency(event)
        if concurrency > 1:
            fanned = self.fan_out(context.invoked_function_arn, concurrency - 1, hold=hold_ms(event))
            containers = {state.container_id, *fanned.pop("containers")}
            reply["fanout"] = {**fanned, "warm_containers": len(containers)}
        return reply
