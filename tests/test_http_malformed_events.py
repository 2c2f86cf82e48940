"""HTTP-shaped events that cannot be read as a request: a 400 in the event source's own response
format, a log line naming the event's shape (never its values), and the container keeps serving.
Shapes AWS really sends (REST's `headers: null` for a request without headers) are served."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from embedding_engine.errors import UnsupportedEventError
from embedding_engine.observability import logger
from helpers import FakeLambdaContext, load_event

SECRET = "Zanzibar's quiet heron counts forty-one lanterns"
V2_KEYS = {"statusCode", "headers", "body", "isBase64Encoded"}
V1_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
ALB_KEYS = {"statusCode", "statusDescription", "headers", "body", "isBase64Encoded"}
# Python's names for types and errors, which a caller of a JSON API should never have to read.
PYTHON_NAMES = re.compile(r"\b(NoneType|dict|list|str|int|float|bool|bytes|\w*Error)\b")

Change = Callable[[dict[str, Any]], None]


def invoke(handler_module: Any, event: Any) -> Any:
    return handler_module.lambda_handler(event, FakeLambdaContext())


def setting(*path: str, value: Any) -> Change:
    """A change that sets event[path[0]][path[1]]... to `value`."""

    def change(event: dict[str, Any]) -> None:
        for key in path[:-1]:
            event = event[key]
        event[path[-1]] = value

    return change


def removing(*path: str) -> Change:
    def change(event: dict[str, Any]) -> None:
        for key in path[:-1]:
            event = event[key]
        del event[path[-1]]

    return change


def base64_body(text: str) -> Change:
    def change(event: dict[str, Any]) -> None:
        event["body"], event["isBase64Encoded"] = text, True

    return change


# (id, event file, change, response keys, fragment of the error message)
MALFORMED: list[tuple[str, str, Change, set[str], str]] = [
    ("v2-invalid-base64", "apigw_http_v2", base64_body("eyJpbnB1dCI6ICJh" + "I"), V2_KEYS, "base64"),
    ("v2-base64-not-alphabet", "apigw_http_v2", base64_body("eyJp*bnB1"), V2_KEYS, "base64"),
    (
        "v2-lone-surrogate-body",
        "apigw_http_v2",
        setting("body", value='{"input": "\ud800"}'),
        V2_KEYS,
        "body",
    ),
    ("v2-body-number", "apigw_http_v2", setting("body", value=42), V2_KEYS, "not a number"),
    ("v2-body-object", "apigw_http_v2", setting("body", value={"input": SECRET}), V2_KEYS, "not an object"),
    ("v2-base64-flag-string", "apigw_http_v2", setting("isBase64Encoded", value="true"), V2_KEYS, "boolean"),
    ("v2-no-http", "apigw_http_v2", removing("requestContext", "http"), V2_KEYS, "requestContext.http"),
    ("v2-context-null", "apigw_http_v2", setting("requestContext", value=None), V2_KEYS, "not null"),
    ("v2-no-method", "apigw_http_v2", removing("requestContext", "http", "method"), V2_KEYS, "method"),
    (
        "v2-method-number",
        "apigw_http_v2",
        setting("requestContext", "http", "method", value=5),
        V2_KEYS,
        "not a number",
    ),
    ("v2-no-source-ip", "apigw_http_v2", removing("requestContext", "http", "sourceIp"), V2_KEYS, "sourceIp"),
    (
        "v2-path-lone-surrogate",
        "apigw_http_v2",
        setting("requestContext", "http", "path", value="/v1/\udc80"),
        V2_KEYS,
        "requestContext.http.path",
    ),
    ("v2-header-number", "apigw_http_v2", setting("headers", "content-length", value=78), V2_KEYS, "headers"),
    (
        "v2-header-lone-surrogate",
        "apigw_http_v2",
        setting("headers", "user-agent", value="\udc80"),
        V2_KEYS,
        "headers",
    ),
    ("v2-headers-array", "apigw_http_v2", setting("headers", value=["a"]), V2_KEYS, "not an array"),
    ("v2-bad-port", "apigw_http_v2", setting("headers", "x-forwarded-port", value="https"), V2_KEYS, "port"),
    ("v2-query-number", "apigw_http_v2", setting("rawQueryString", value=1), V2_KEYS, "rawQueryString"),
    ("v2-cookies-object", "apigw_http_v2", setting("cookies", value={"a": "b"}), V2_KEYS, "cookies"),
    ("url-invalid-base64", "function_url", setting("body", value="abc"), V2_KEYS, "base64"),
    ("v1-no-method", "apigw_rest_v1", removing("httpMethod"), V1_KEYS, "httpMethod"),
    ("v1-path-number", "apigw_rest_v1", setting("path", value=5), V1_KEYS, "path"),
    (
        "v1-identity-null",
        "apigw_rest_v1",
        setting("requestContext", "identity", value=None),
        V1_KEYS,
        "identity",
    ),
    ("v1-query-string", "apigw_rest_v1", setting("queryStringParameters", value="a=b"), V1_KEYS, "query"),
    (
        "v1-multi-header-numbers",
        "apigw_rest_v1",
        setting("multiValueHeaders", "Accept", value=[1, 2]),
        V1_KEYS,
        "multiValueHeaders",
    ),
    ("v1-invalid-base64", "apigw_rest_v1", base64_body("e30"), V1_KEYS, "base64"),
    ("alb-invalid-base64", "alb", base64_body("e30"), ALB_KEYS, "base64"),
    ("alb-body-list", "alb", setting("body", value=[SECRET]), ALB_KEYS, "not an array"),
]


@pytest.mark.parametrize(
    ("name", "change", "keys", "fragment"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_a_malformed_http_event_is_a_400_in_its_sources_format(
    handler_module: Any, name: str, change: Change, keys: set[str], fragment: str
) -> None:
    event = load_event(name)
    change(event)

    response = invoke(handler_module, event)

    assert set(response) == keys
    assert response["statusCode"] == 400
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    if "statusDescription" in keys:
        assert response["statusDescription"] == "400 Bad Request"
    body = json.loads(response["body"])
    message = body["error"] if name == "function_url" else body["error"]["message"]  # /embed speaks TEI
    assert fragment in message
    assert SECRET not in message
    assert not PYTHON_NAMES.search(message), message


def test_alb_with_multi_value_headers_gets_its_400_in_multi_value_headers(handler_module: Any) -> None:
    event = load_event("alb")
    event["multiValueHeaders"] = {key: [value] for key, value in event.pop("headers").items()}
    event["body"], event["isBase64Encoded"] = "e30", True

    response = invoke(handler_module, event)

    assert set(response) == {
        "statusCode",
        "statusDescription",
        "multiValueHeaders",
        "body",
        "isBase64Encoded",
    }
    assert response["statusCode"] == 400
    assert response["multiValueHeaders"]["content-type"] == ["application/json"]


@pytest.mark.parametrize(
    ("name", "change"),
    [
        pytest.param("apigw_rest_v1_console_test", None, id="rest-console-test-null-headers"),
        pytest.param("apigw_rest_v1", setting("body", value=None), id="rest-body-null"),
        pytest.param("apigw_http_v2", setting("headers", value=None), id="v2-headers-null"),
        pytest.param("apigw_http_v2", removing("headers"), id="v2-no-headers"),
        pytest.param("apigw_http_v2", setting("cookies", value=None), id="v2-cookies-null"),
        pytest.param("apigw_http_v2", setting("isBase64Encoded", value=None), id="v2-base64-flag-null"),
        pytest.param("alb", setting("headers", value=None), id="alb-headers-null"),
        pytest.param("alb", setting("queryStringParameters", value=None), id="alb-query-null"),
    ],
)
def test_nulls_aws_sends_for_absent_parts_are_served(
    handler_module: Any, name: str, change: Change | None
) -> None:
    event = load_event(name)
    if change is not None:
        change(event)

    response = invoke(handler_module, event)

    if event.get("body") is None:  # a POST without a body: the app's own 400, not the adapter's
        assert response["statusCode"] == 400
        assert "body is empty" in json.loads(response["body"])["error"]["message"]
    else:
        assert response["statusCode"] == 200, response["body"]
        assert len(json.loads(response["body"])["data"]) >= 1


def test_a_rest_get_without_headers_or_body_is_served(handler_module: Any) -> None:
    event = load_event("apigw_rest_v1_console_test")
    event.update(path="/health", httpMethod="GET", body=None, pathParameters={"proxy": "health"})

    response = invoke(handler_module, event)

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "ok"


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"requestContext": None}, id="context-null"),
        pytest.param({"requestContext": "elb"}, id="context-string"),
        pytest.param({"requestContext": 5, "body": SECRET}, id="context-number"),
    ],
)
def test_events_that_are_not_http_at_all_are_unsupported_not_a_crash(
    handler_module: Any, event: dict[str, Any]
) -> None:
    with pytest.raises(UnsupportedEventError):
        invoke(handler_module, event)


def test_a_malformed_event_is_logged_by_shape_and_the_container_keeps_serving(
    handler_module: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)
    event = load_event("apigw_http_v2")
    event["body"], event["isBase64Encoded"] = SECRET, True

    assert invoke(handler_module, event)["statusCode"] == 400

    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line.get("message") == "malformed http event"]
    assert line["level"] == "WARNING"
    assert line["event_shape"].startswith("a JSON object with keys [body, headers, isBase64Encoded")
    assert "base64" in line["problem"]
    assert invoke(handler_module, load_event("apigw_http_v2"))["statusCode"] == 200
