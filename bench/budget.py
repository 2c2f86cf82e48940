"""Does the default token budget fit the time a request has? One request of exactly the budget (realistic
passages, base64 so that the response fits), through `handler.lambda_handler`, timed once."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.latency import passages
from helpers import FakeLambdaContext, http_api_event  # tests/helpers.py


def measure_budget(handler: Any) -> dict[str, Any]:
    """The budget derived at init, and how long a request of that many tokens takes here."""
    engine = handler.engine
    budget = engine.max_total_tokens
    texts: list[str] = []
    tokens = 0
    pool = passages(256, engine.embedder.token_counts)
    counts = engine.embedder.token_counts(pool)
    while True:
        text, count = pool[len(texts) % len(pool)], counts[len(texts) % len(pool)]
        if tokens + count > budget or len(texts) == engine.settings.max_inputs:
            break
        texts.append(text)
        tokens += count
    event = http_api_event(json.dumps({"input": texts, "encoding_format": "base64"}))
    started = time.perf_counter()
    response = handler.lambda_handler(event, FakeLambdaContext())
    seconds = time.perf_counter() - started
    return {
        "max_total_tokens": budget,
        "tokens_per_second_at_init": round(engine.embedder.throughput.tokens_per_second),
        "request_timeout_seconds": engine.settings.request_timeout_seconds,
        "request": {"inputs": len(texts), "tokens": tokens, "status": response["statusCode"]},
        "seconds": round(seconds, 2),
        "share_of_timeout": round(seconds / engine.settings.request_timeout_seconds, 3),
    }
