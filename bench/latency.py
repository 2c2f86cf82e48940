"""In-process figures, against bare `encode` of the same texts, interleaved in the same process.

- Overhead: `handler.lambda_handler` with the API Gateway v2 event of one short query (Powertools,
  routing, Mangum, Starlette, validation, tokens, JSON) against `model.encode([text])`.
- Throughput: inputs per second through `/v1/embeddings` (float and base64) against `model.encode`
  of the same batch (the service's batch size), for batches of realistic passages.
The handler module is imported by the caller (`import handler` is the whole Lambda init).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.corpus import sentence
from helpers import FakeLambdaContext, http_api_event  # tests/helpers.py

EVENT_PATH = Path(__file__).resolve().parents[1] / "tests" / "events" / "apigw_http_v2.json"
PASSAGE_TOKENS = (40, 120)  # realistic inputs: a few sentences, a short paragraph


def fixture_query() -> str:
    """The short query the fixture event carries ("How do I avoid Lambda cold starts?")."""
    body = json.loads(json.loads(EVENT_PATH.read_text(encoding="utf-8"))["body"])
    return str(body["input"][0])


def passages(count: int, count_tokens: Callable[[Sequence[str]], list[int]], *, seed: int = 23) -> list[str]:
    """`count` deterministic passages of 2-6 corpus sentences, each of PASSAGE_TOKENS tokens."""
    rng = random.Random(seed)
    low, high = PASSAGE_TOKENS
    found: list[str] = []
    while len(found) < count:
        candidates = [" ".join(sentence(rng) for _ in range(rng.randint(2, 6))) for _ in range(64)]
        found += [
            text for text, n in zip(candidates, count_tokens(candidates), strict=True) if low <= n <= high
        ]
    return found[:count]


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _checked(response: dict[str, Any]) -> None:
    if response.get("statusCode") != 200:
        raise RuntimeError(
            f"handler answered {response.get('statusCode')}: {str(response.get('body'))[:300]}"
        )


def measure_overhead(handler: Any, *, text: str, calls: int, warmup: int = 5) -> dict[str, Any]:
    """Median of the full handler against bare encode of `text`, alternating, `calls` each."""
    model, model_id = handler.engine.embedder.model, handler.engine.embedder.model_id
    event, context = http_api_event(json.dumps({"input": [text], "model": model_id})), FakeLambdaContext()
    variants: dict[str, Callable[[], Any]] = {
        "handler": lambda: handler.lambda_handler(event, context),
        "encode": lambda: model.encode([text]),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(warmup + calls):
        order = list(variants) if index % 2 == 0 else list(reversed(variants))
        for name in order:
            seconds, result = _timed(variants[name])
            if name == "handler":
                _checked(result)
            if index >= warmup:
                times[name].append(seconds * 1000)
    handler_ms, encode_ms = (statistics.median(times[name]) for name in ("handler", "encode"))
    return {
        "text": text,
        "calls": calls,
        "handler_ms": round(handler_ms, 3),
        "encode_ms": round(encode_ms, 3),
        "ratio": round(handler_ms / encode_ms, 3),
    }


def _batch_variants(
    handler: Any, events: dict[str, dict[str, Any]], context: FakeLambdaContext, batch: list[str]
) -> dict[str, Callable[[], Any]]:
    embedder = handler.engine.embedder
    return {
        "float": lambda: handler.lambda_handler(events["float"], context),
        "base64": lambda: handler.lambda_handler(events["base64"], context),
        "encode": lambda: embedder.model.encode(batch, batch_size=embedder.batch_size),
    }


def measure_throughput(
    handler: Any, *, batch_sizes: Sequence[int], repetitions: dict[int, int]
) -> dict[str, Any]:
    """Inputs/s by batch size: the handler (float, base64) beside bare encode, rotating the order."""
    embedder = handler.engine.embedder
    texts = passages(max(batch_sizes), embedder.token_counts)
    tokens = embedder.token_counts(texts)
    context = FakeLambdaContext()
    results: dict[str, Any] = {
        "passage_tokens": {"min": min(tokens), "mean": round(statistics.mean(tokens), 1), "max": max(tokens)},
        "batches": {},
    }
    for size in batch_sizes:
        batch = texts[:size]
        events = {
            fmt: http_api_event(
                json.dumps({"input": batch, "model": embedder.model_id, "encoding_format": fmt})
            )
            for fmt in ("float", "base64")
        }
        variants = _batch_variants(handler, events, context, batch)
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for index in range(1 + repetitions[size]):  # the first round is a warm-up
            for name in names[index % 3 :] + names[: index % 3]:
                seconds, result = _timed(variants[name])
                if name != "encode":
                    _checked(result)
                if index:
                    times[name].append(seconds)
        rate = {name: size / statistics.median(values) for name, values in times.items()}
        results["batches"][str(size)] = {
            "repetitions": repetitions[size],
            "float_per_s": round(rate["float"], 1),
            "base64_per_s": round(rate["base64"], 1),
            "encode_per_s": round(rate["encode"], 1),
            "float_ratio": round(rate["float"] / rate["encode"], 3),
            "base64_ratio": round(rate["base64"] / rate["encode"], 3),
        }
    return results
