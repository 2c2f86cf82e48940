"""Work bounded by what a request can have: a token budget from the measured throughput, a deadline
checked before each batch, and a response size known before anything is computed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from embedding_engine.embedder import Throughput
from embedding_engine.engine import Engine
from embedding_engine.health import health_report
from embedding_engine.limits import OPENAI_MAX_TOTAL_TOKENS, default_max_total_tokens, response_bytes
from helpers import FakeLambdaContext, http_api_event

PASSAGE = "A warm container answers embedding requests in milliseconds because init loaded the model. " * 2


@dataclass
class ShortLivedContext(FakeLambdaContext):
    """A Lambda context whose invocation has only `remaining_ms` left."""

    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def encode_calls(engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The number of texts of each call into the model (the real `encode`, counted)."""
    calls: list[int] = []
    for model in {id(m): m for m in (engine.embedder.model, engine.embedder._raw_model) if m}.values():
        real = model.encode

        def counted(texts: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(len(texts))
            return _real(texts, *args, **kwargs)

        monkeypatch.setattr(model, "encode", counted)
    yield calls


def test_the_default_budget_follows_the_measured_throughput(engine: Any) -> None:
    settings = replace(
        engine.settings, max_total_tokens=None, database_url=None, request_timeout_seconds=12.0
    )
    started = Engine.start(settings, init_started=time.perf_counter())
    measured = started.embedder.throughput.tokens_per_second
    assert measured > 0
    assert started.max_total_tokens == default_max_total_tokens(measured, 12.0)
    assert 1000 <= started.max_total_tokens <= OPENAI_MAX_TOTAL_TOKENS
    health = health_report(started)
    assert (health["max_total_tokens"], health["request_timeout_seconds"]) == (started.max_total_tokens, 12.0)


def test_an_explicit_budget_wins(engine: Any) -> None:
    assert engine.settings.max_total_tokens == engine.max_total_tokens == 300_000  # conftest.py


@pytest.mark.parametrize(
    ("tokens_per_second", "timeout", "budget"),
    [(10_000.0, 29.0, 145_000), (1_300.0, 29.0, 18_000), (50_000.0, 29.0, 300_000), (10.0, 29.0, 1000)],
)
def test_default_budget_arithmetic(tokens_per_second: float, timeout: float, budget: int) -> None:
    assert default_max_total_tokens(tokens_per_second, timeout) == budget


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"input": [PASSAGE] * 40}, "/v1/embeddings"),
        ({"input": [PASSAGE] * 40, "encoding_format": "base64"}, "/v1/embeddings"),
        ({"input": [PASSAGE] * 40, "dimensions": 64}, "/v1/embeddings"),
        ({"input": ["a"] * 200}, "/v1/embeddings"),
        ({"inputs": [PASSAGE] * 40}, "/embed"),
    ],
    ids=["float", "base64", "dimensions", "many-short", "tei"],
)
def test_the_response_size_estimate_covers_the_real_response(
    client: TestClient, body: dict[str, Any], path: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 200
    texts = body.get("input") or body["inputs"]
    estimate = response_bytes(
        len(texts), body.get("dimensions", 384), base64=body.get("encoding_format") == "base64"
    )
    assert len(response.content) <= estimate <= 1.2 * len(response.content)


def test_a_response_too_large_is_refused_before_the_model_runs(
    make_client: Any, encode_calls: list[int]
) -> None:
    # 300 x 384 floats are about 1.4 MB of JSON; 8 bytes per float (the old guess) said 0.9 MB.
    limited = make_client(max_response_bytes=1_200_000)
    response = limited.post("/v1/embeddings", json={"input": ["short text"] * 300})
    assert response.status_code == 413
    assert "encoding_format='base64'" in response.json()["error"]["message"]
    assert encode_calls == []
    assert limited.post("/v1/embeddings", json={"input": ["short text"] * 300, "encoding_format": "base64"})


def test_the_token_budget_is_checked_before_the_model_runs(make_client: Any, encode_calls: list[int]) -> None:
    response = make_client(max_total_tokens=1000).post("/v1/embeddings", json={"input": [PASSAGE] * 40})
    assert response.status_code == 400
    assert "over the limit of 1000 tokens per request: split the batch" in response.json()["error"]["message"]
    assert encode_calls == []


def test_work_that_cannot_finish_before_the_deadline_is_refused_at_once(
    handler_module: Any, engine: Any, monkeypatch: pytest.MonkeyPatch, encode_calls: list[int]
) -> None:
    # At 200 tokens/s, 64 passages need over a minute: far more than the 3 s this invocation has.
    monkeypatch.setattr(engine.embedder, "throughput", Throughput(tokens_per_second=200.0))
    event = http_api_event(json.dumps({"input": [PASSAGE] * 64}))
    response = handler_module.lambda_handler(event, ShortLivedContext(remaining_ms=3000))
    assert response["statusCode"] == 503
    error = json.loads(response["body"])["error"]
    assert error["code"] == "deadline_exceeded"
    assert "These 64 inputs need about" in error["message"]
    assert "Split the request" in error["message"]
    assert encode_calls == []


def test_the_model_stops_between_batches_when_time_runs_out(
    handler_module: Any, engine: Any, monkeypatch: pytest.MonkeyPatch, encode_calls: list[int]
) -> None:
    # The estimate says the work fits; the first batch (64 inputs of the maximum length: 16,384 tokens,
    # over a second here) outlasts the 0.3 s left after the 1 s kept for the reply, so the second batch
    # is not started.
    monkeypatch.setattr(engine.embedder, "throughput", Throughput(tokens_per_second=1e12))
    monkeypatch.setattr(engine.embedder, "batch_size", 64)
    event = http_api_event(json.dumps({"input": [PASSAGE * 10] * 128}))
    response = handler_module.lambda_handler(event, ShortLivedContext(remaining_ms=1300))
    assert response["statusCode"] == 503
    message = json.loads(response["body"])["error"]["message"]
    assert "Stopped after 64 of 128 inputs" in message
    assert encode_calls == [64]


def test_the_request_timeout_applies_without_a_lambda_context(
    make_client: Any, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.embedder, "throughput", Throughput(tokens_per_second=200.0))
    response = make_client(request_timeout_seconds=2.0).post("/embed", json={"inputs": [PASSAGE] * 64})
    assert response.status_code == 503
    assert response.json()["error_type"] == "Unhealthy"
    assert "Split the request" in response.json()["error"]


def test_a_request_that_fits_is_served_under_a_short_deadline(handler_module: Any) -> None:
    response = handler_module.lambda_handler(
        http_api_event(json.dumps({"input": ["fits"]})), ShortLivedContext(remaining_ms=3000)
    )
    assert response["statusCode"] == 200
