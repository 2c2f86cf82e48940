"""Reading an HTTP-shaped event as a request: which source sent it, what a null means, and which field
(by name and JSON type, never by value) makes it unreadable. Mangum raises on such events; the adapter in
`events/http.py` answers them with a 400 instead."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from enum import Enum
from typing import Any

from embedding_engine.errors import json_type

_MISSING = object()
LONE_SURROGATE = "is not valid text: it holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape)"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110's token: what a method may be

Check = Callable[[str, Any], "str | None"]


def _wrong(label: str, value: Any, expected: str) -> str:
    if value is _MISSING:
        return f"{label} is missing"
    return f"{label} must be {expected}, not {json_type(value)}"


def _string(label: str, value: Any) -> str | None:
    return None if isinstance(value, str) else _wrong(label, value, "a string")


def _text(label: str, value: Any) -> str | None:
    """A string that can be encoded as UTF-8 (JSON lets a lone surrogate through: "\\ud800")."""
    problem = _string(label, value)
    if problem is None and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return f"{label} {LONE_SURROGATE}"
    return problem


def _method(label: str, value: Any) -> str | None:
    if isinstance(value, str) and not _TOKEN.fullmatch(value):
        return f"{label} is not an HTTP method"
    return _text(label, value)


def _texts(label: str, value: Any) -> str | None:
    if not isinstance(value, list):
        return _wrong(label, value, "an array of strings")
    for item in value:
        problem = _text(f"an item of {label}", item)
        if problem is not None:
            return problem
    return None


def _text_map(values: Check) -> Check:
    """A check for an object whose names are strings and whose values pass `values`."""

    def check(label: str, value: Any) -> str | None:
        if not isinstance(value, dict):
            return _wrong(label, value, "an object")
        for key, item in value.items():
            problem = _text(f"a name in {label}", key) or values(f"a value in {label}", item)
            if problem is not None:
                return problem
        return None

    return check


def _boolean(label: str, value: Any) -> str | None:
    return None if isinstance(value, bool) else _wrong(label, value, "a boolean")


def _present(label: str, value: Any) -> str | None:
    return f"{label} is missing" if value is _MISSING else None


def _object(label: str, value: Any) -> str | None:
    return None if isinstance(value, dict) else _wrong(label, value, "an object")


# Parts a request may not have, which AWS then sends as null (REST) or leaves out (HTTP API), and
# what each must be when it is there. The body's text is checked as it is decoded (`request_body`).
OPTIONAL_PARTS: dict[str, Check] = {
    "headers": _text_map(_text),
    "multiValueHeaders": _text_map(_texts),
    "queryStringParameters": _text_map(_text),
    "multiValueQueryStringParameters": _text_map(_texts),
    "cookies": _texts,
    "rawQueryString": _text,
    "body": _string,
    "isBase64Encoded": _boolean,
}


class Source(Enum):
    """An HTTP event's source, which decides the shape of the reply."""

    REST = "API Gateway REST (payload 1.0)"
    HTTP_API = "HTTP API or Function URL (payload 2.0)"
    ALB = "Application Load Balancer"


class MalformedEventError(Exception):
    """The event cannot be read as a request; the message names the field, never its value."""


def source_of(event: dict[str, Any]) -> Source:
    context = event.get("requestContext")
    if isinstance(context, dict) and "elb" in context:
        return Source.ALB
    return Source.HTTP_API if event.get("version") == "2.0" else Source.REST


def without_nulls(event: dict[str, Any], source: Source) -> dict[str, Any]:
    """`event` without the optional parts that are null (a shallow copy; `event` is left as it is)."""
    readable = {key: value for key, value in event.items() if value is not None or key not in OPTIONAL_PARTS}
    if source is Source.ALB and "headers" not in readable and "multiValueHeaders" not in readable:
        readable["headers"] = {}  # Mangum reads an ALB event's headers from one of the two
    return readable


def event_problem(event: dict[str, Any], source: Source) -> str | None:
    """What makes `event` unreadable as a request of `source`, by field name and JSON type (never by
    value); None when nothing does. The body is checked as it is decoded (`request_body`)."""
    context = event.get("requestContext", _MISSING)
    if not isinstance(context, dict):
        return _wrong("`requestContext`", context, "an object")
    checks: list[tuple[str, Any, Check]]
    if source is Source.HTTP_API:
        http = context.get("http", _MISSING)
        if not isinstance(http, dict):
            return _wrong("`requestContext.http`", http, "an object")
        checks = [
            ("`requestContext.http.method`", http.get("method", _MISSING), _method),
            ("`requestContext.http.path`", http.get("path", _MISSING), _text),
            ("`requestContext.http.sourceIp`", http.get("sourceIp", _MISSING), _present),
        ]
    else:
        checks = [
            ("`httpMethod`", event.get("httpMethod", _MISSING), _method),
            ("`path`", event.get("path", _MISSING), _text),
            ("`requestContext.identity`", context.get("identity", {}), _object),
        ]
    checks += [(f"`{key}`", event[key], check) for key, check in OPTIONAL_PARTS.items() if key in event]
    for label, value, check in checks:
        problem = check(label, value)
        if problem is not None:
            return problem
    return None


def request_body(event: dict[str, Any]) -> bytes:
    """The body's bytes; base64 is decoded strictly."""
    body = event.get("body")
    if body is None:
        return b""
    try:
        return base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
    except UnicodeEncodeError:
        raise MalformedEventError(f"`body` {LONE_SURROGATE}") from None
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise MalformedEventError("`body` is not valid base64, although `isBase64Encoded` is true") from None


def request_path(event: dict[str, Any], source: Source) -> str:
    """The request's path when it is readable text (it picks the error's dialect); "" otherwise."""
    if source is Source.HTTP_API:
        context = event.get("requestContext")
        http = context.get("http") if isinstance(context, dict) else None
        path = http.get("path") if isinstance(http, dict) else None
    else:
        path = event.get("path")
    return str(path) if _text("", path) is None else ""
