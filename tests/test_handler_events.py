"""Every kind of event Lambda may hand the function, through `handler.lambda_handler` as Lambda calls it.

The events in tests/events/ are real payloads, in the shapes AWS documents for each source.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import pytest

from embedding_engine.errors import StoreUnavailableError, UnsupportedEventError
from embedding_engine.events.records import DocumentRecords
from embedding_engine.observability import logger
from helpers import FakeLambdaContext, cosine_rows, http_api_event, load_event, request_payload

MIN_COSINE = 0.9999
DIMENSIONS = 384
SECRET = "Zanzibar's quiet heron counts forty-one lanterns"

# The keys of each source's proxy response, as Mangum builds it for that source.
REST_V1_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
PAYLOAD_V2_KEYS = {"statusCode", "headers", "body", "isBase64Encoded"}
ALB_KEYS = {"statusCode", "headers", "body", "isBase64Encoded"}
PING_KEYS = {"warm", "model", "uptime_seconds", "cold_start", "first_invocation", "invocations"}


def invoke(handler_module: Any, event: Any) -> Any:
    return handler_module.lambda_handler(event, FakeLambdaContext())


def json_body(response: dict[str, Any]) -> Any:
    """The body of a proxy response, after checking it is served as text JSON."""
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    return json.loads(response["body"])


@pytest.mark.parametrize(
    ("name", "response_keys"),
    [
        ("apigw_rest_v1", REST_V1_KEYS),
        ("apigw_http_v2", PAYLOAD_V2_KEYS),
        ("function_url", PAYLOAD_V2_KEYS),
        ("alb", ALB_KEYS),
    ],
)
def test_http_event_returns_reference_embeddings(
    handler_module: Any, reference_model: Any, name: str, response_keys: set[str]
) -> None:
    event = load_event(name)
    payload = request_payload(event)

    response = invoke(handler_module, event)

    assert set(response) == response_keys
    assert response["statusCode"] == 200
    body = json_body(response)
    if "input" in payload:  # OpenAI: POST /v1/embeddings
        texts = payload["input"]
        assert body["object"] == "list"
        assert body["model"] == handler_module.engine.embedder.model_id
        assert [item["index"] for item in body["data"]] == list(range(len(texts)))
        vectors = [item["embedding"] for item in body["data"]]
    else:  # TEI: POST /embed answers a bare list of vectors
        texts = payload["inputs"]
        vectors = body
    assert len(vectors) == len(texts)
    assert all(len(vector) == DIMENSIONS for vector in vectors)
    assert (cosine_rows(vectors, reference_model.encode(texts)) >= MIN_COSINE).all()


def test_alb_response_uses_single_value_headers(handler_module: Any) -> None:
    """A target group without multi-value headers must get `headers` of plain strings."""
    response = invoke(handler_module, load_event("alb"))

    assert "multiValueHeaders" not in response
    assert all(isinstance(value, str) for value in response["headers"].values())


def test_alb_responses_stay_under_the_load_balancers_1_mb(handler_module: Any) -> None:
    """A response Lambda could return (6 MB) but an ALB could not (1 MB) is a clear 413, not a 502."""
    event = load_event("alb")
    texts = [f"document number {index}" for index in range(300)]
    event["body"] = json.dumps({"input": texts})
    too_big = invoke(handler_module, event)
    assert too_big["statusCode"] == 413
    assert "encoding_format='base64'" in json.loads(too_big["body"])["error"]["message"]
    event["body"] = json.dumps({"input": texts, "encoding_format": "base64"})
    fits = invoke(handler_module, event)
    assert fits["statusCode"] == 200
    assert len(fits["body"]) < 1024 * 1024


def test_health_event_reports_model_and_init(handler_module: Any) -> None:
    response = invoke(handler_module, load_event("apigw_http_v2_health"))

    assert set(response) == PAYLOAD_V2_KEYS
    assert response["statusCode"] == 200
    health = json_body(response)
    assert health["status"] == "ok"
    assert health["model"] == handler_module.engine.embedder.model_id
    assert health["dimensions"] == DIMENSIONS
    assert health["load_strategy"] == handler_module.engine.load_report.strategy
    assert isinstance(health["load_strategy"], str)
    assert health["load_strategy"]
    for phase in ("imports", "load", "warmup"):
        assert health["timings_ms"][phase] >= 0


def test_bad_json_body_is_an_openai_400(handler_module: Any) -> None:
    response = invoke(handler_module, http_api_event('{"input": ["unterminated'))

    assert response["statusCode"] == 400
    error = json_body(response)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(load_event("warmup_schedule_input"), id="schedule-input"),
        pytest.param(load_event("eventbridge_scheduled"), id="eventbridge-scheduled-event"),
        pytest.param(load_event("serverless_plugin_warmup"), id="serverless-plugin-warmup"),
        pytest.param({"warmup": True, "concurrency": 3}, id="warmup-with-concurrency"),
    ],
)
def test_warmup_ping_answers_without_http(handler_module: Any, event: dict[str, Any]) -> None:
    state = handler_module.engine.state
    before = state.invocations

    result = invoke(handler_module, event)

    assert "statusCode" not in result
    assert set(result) >= PING_KEYS
    assert result["warm"] is True
    assert result["model"] == handler_module.engine.embedder.model_id
    assert result["uptime_seconds"] > 0
    assert result["cold_start"] is state.cold_start
    assert result["invocations"] == before + 1
    assert result["first_invocation"] is (before == 0)


@pytest.mark.parametrize("name", ["sqs_s3_notification", "s3_put"])
def test_document_records_need_a_configured_store(name: str) -> None:
    """Without DATABASE_URL the records are refused with the fix in the message (SQS retries them)."""
    with pytest.raises(StoreUnavailableError, match="DATABASE_URL"):
        DocumentRecords(None)(load_event(name), FakeLambdaContext())


@pytest.mark.parametrize(
    ("event", "shape", "secret"),
    [
        pytest.param(
            load_event("sns_notification"), "a JSON object with keys [Records]", "Confidential memo", id="sns"
        ),
        pytest.param({}, "an empty JSON object", None, id="empty-object"),
        pytest.param({"text": SECRET}, "a JSON object with keys [text]", SECRET, id="object"),
        pytest.param([SECRET], "a JSON array", SECRET, id="list"),
        pytest.param(SECRET, "a JSON string", SECRET, id="string"),
        pytest.param(42, "a JSON number", None, id="integer"),
        pytest.param(2.5, "a JSON number", None, id="float"),
    ],
)
def test_unknown_event_is_refused_by_shape_never_by_value(
    handler_module: Any, event: Any, shape: str, secret: str | None
) -> None:
    with pytest.raises(UnsupportedEventError) as raised:
        invoke(handler_module, event)

    message = str(raised.value)
    assert message.startswith(f"Unsupported event: {shape}.")
    if secret is not None:
        assert secret not in message


def test_a_trailing_slash_through_api_gateway_is_a_404_not_a_redirect(handler_module: Any) -> None:
    """No 307 whose Location comes from the Host header: the caller could choose where it points."""
    event = http_api_event(json.dumps({"input": ["a"]}))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/embeddings/"
    event["headers"]["host"] = "evil.example"

    response = invoke(handler_module, event)

    assert response["statusCode"] == 404
    assert "location" not in response["headers"]
    assert "Did you mean /v1/embeddings" in json_body(response)["error"]["message"]


def test_container_keeps_serving_after_unsupported_events(handler_module: Any) -> None:
    events: tuple[Any, ...] = ({}, load_event("sns_notification"), "ping")
    for event in events:
        with pytest.raises(UnsupportedEventError):
            invoke(handler_module, event)

    response = invoke(handler_module, load_event("apigw_http_v2"))

    assert response["statusCode"] == 200
    assert len(json_body(response)["data"]) == 1


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(http_api_event(json.dumps({"input": [SECRET]})), {"Inputs": [1.0]}, id="http-metrics"),
        pytest.param(
            {"document": SECRET}, {"message": "unsupported event", "level": "WARNING"}, id="refusal-log"
        ),
    ],
)
def test_logs_never_contain_input_texts(
    handler_module: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    event: Any,
    expected: dict[str, Any],
) -> None:
    """Logger and EMF metrics both go to stdout (CloudWatch): the invocation is logged, not its text."""
    # The logger's stream was bound at import; point it at the stdout this test captures.
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)

    with contextlib.suppress(UnsupportedEventError):
        invoke(handler_module, event)

    captured = capsys.readouterr()
    assert SECRET not in captured.out
    assert SECRET not in captured.err
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    matching = [line for line in lines if expected.items() <= line.items()]
    assert matching, f"no log line with {expected} in {captured.out!r}"
    if "message" in expected:
        assert {"cold_start", "function_request_id"} <= matching[0].keys()
        assert matching[0]["event_shape"] == "a JSON object with keys [document]"
