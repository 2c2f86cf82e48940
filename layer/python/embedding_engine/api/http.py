"""HTTP plumbing shared by both dialects: bounded JSON bodies in, size-checked JSON out, error shapes."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from embedding_engine.errors import (
    MalformedRequestError,
    PayloadTooLargeError,
    SchemaError,
    ServiceError,
    json_type,
)
from embedding_engine.service import response_too_large

ModelT = TypeVar("ModelT", bound=BaseModel)


class Dialect(Enum):
    """Which API family's error shape a route speaks."""

    OPENAI = "openai"
    TEI = "tei"


# The ASGI scope key in which the event adapter tells the app a smaller response limit than Lambda's
# (an ALB's 1 MB): the app knows nothing of Lambda events.
RESPONSE_LIMIT_KEY = "embedding_engine.response_limit"


async def read_json_object(request: Request, *, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, whatever the Content-Type (curl -d sends a form type)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _request_too_large(int(declared), max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _request_too_large(len(body), max_bytes)
    if not body.strip():
        raise MalformedRequestError("The request body is empty; send a JSON object.")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(
            f"The request body is not valid JSON: {_json_problem(body, exc)}."
        ) from None
    if not isinstance(payload, dict):
        raise MalformedRequestError(f"The request body must be a JSON object, not {json_type(payload)}.")
    return payload


def parse(model: type[ModelT], payload: dict[str, Any]) -> ModelT:
    """Validate `payload` against `model`, turning pydantic's errors into one clear `SchemaError`."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SchemaError(f"Invalid `{field}`: {message}{more}.", param=field) from None


def json_response(content: Any, *, max_bytes: int) -> Response:
    """Serialise with orjson (numpy arrays natively); refuse what a Lambda response cannot carry."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    if len(body) > max_bytes:
        raise response_too_large(len(body), max_bytes)
    return Response(body, media_type="application/json")


def error_response(error: ServiceError, dialect: Dialect) -> Response:
    """OpenAI's `{"error": {...}}` or TEI's `{"error", "error_type"}`, with the error's status."""
    content: dict[str, Any]
    if dialect is Dialect.TEI:
        content = {"error": error.message, "error_type": error.tei_type}
    else:
        content = {
            "error": {
                "message": error.message,
                "type": error.openai_type,
                "param": error.param,
                "code": error.code,
            }
        }
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    return Response(
        orjson.dumps(content), status_code=error.status_code, media_type="application/json", headers=headers
    )


def _json_problem(body: bytearray, exc: orjson.JSONDecodeError) -> str:
    """orjson's reason, except for bytes that are not UTF-8 (which orjson reports as "str is not valid
    UTF-8", naming a Python type)."""
    try:
        body.decode()
    except UnicodeDecodeError as bad:
        return f"it is not valid UTF-8 (byte {bad.start}), and JSON must be"
    return str(exc)


def _request_too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body is {size} bytes, over the {limit} bytes a synchronous Lambda invocation "
        "accepts. Send fewer or shorter inputs per request.",
        code="request_too_large",
    )
