"""Test helpers: event fixtures, a Lambda context, vector comparisons."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

EVENTS_DIR = Path(__file__).parent / "events"


@cache
def _event_file(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return event


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of `tests/events/<name>.json` (a real payload), safe to modify."""
    return copy.deepcopy(_event_file(name))


def http_api_event(body: str, path: str = "/v1/embeddings") -> dict[str, Any]:
    """The HTTP API v2 fixture turned into `POST path` carrying `body` (and its content-length)."""
    event = load_event("apigw_http_v2")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"POST {path}"
    event["body"] = body
    event["headers"]["content-length"] = str(len(body.encode()))
    return event


def request_payload(event: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of an HTTP event, decoded as Lambda delivers it (base64 or not)."""
    raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"]
    payload = json.loads(raw)
    assert isinstance(payload, dict)
    return payload


def log_records(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a log (Powertools' structured records, EMF metrics), in order; others skipped."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


@dataclass
class FakeLambdaContext:
    """The attributes of Lambda's context object that Powertools and Mangum read."""

    function_name: str = "embeddings-api"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:embeddings-api:live"
    aws_request_id: str = "8f5e0a1c-52a3-4c1f-9d0e-2f3c4b5a6d7e"
    log_group_name: str = "/aws/lambda/embeddings-api"
    log_stream_name: str = "2026/11/25/[$LATEST]0123456789abcdef"
    remaining_ms: int = 30_000  # what get_remaining_time_in_millis() answers, however long the call runs

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def cosine_rows(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Row-wise cosine similarity of two equally shaped 2-D arrays."""
    left = np.asarray(a, dtype=np.float64)
    right = np.asarray(b, dtype=np.float64)
    dots = (left * right).sum(axis=1)
    cosines: npt.NDArray[np.float64] = dots / (np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1))
    return cosines
