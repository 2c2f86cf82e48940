"""The API's OpenAPI 3.1 description, built from what the code runs: the route table (`routes.py`), the
request models the endpoints validate with (passed in by `app.create_app`), the success bodies
(`responses.py`) and the typed errors (`errors.py`), each route's errors in its dialect's shape."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from embedding_engine.api import responses
from embedding_engine.api.http import Dialect, error_response
from embedding_engine.api.routes import RouteSpec
from embedding_engine.errors import ServiceError
from embedding_engine.settings import Settings

OPENAPI_VERSION = "3.1.0"
SCHEMAS = "#/components/schemas/"
JSON = "application/json"
BEARER = "bearer"


@dataclass(frozen=True)
class Operation:
    """What the route table does not say about an endpoint: its summary, tag and success body (a
    response model, sent as JSON, or a map of content types to schemas)."""

    summary: str
    tag: str
    success: type[BaseModel] | dict[str, Any]
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)  # path parameters' schemas


def operations(asset_types: dict[str, str]) -> dict[str, Operation]:
    """Each endpoint's `Operation`, by the endpoint names of the route table."""
    text = {"schema": {"type": "string"}}
    return {
        "embeddings": Operation("Create embeddings (OpenAI)", "OpenAI", responses.EmbeddingsResponse),
        "embed": Operation("Embed (text-embeddings-inference)", "TEI", responses.EmbedResponse),
        "search": Operation("Search the indexed documents", "Search", responses.SearchResponse),
        "health": Operation("The model and this container's state", "Service", responses.HealthResponse),
        "openapi": Operation("This description", "Documentation", {JSON: {"schema": {"type": "object"}}}),
        "docs": Operation("This description, rendered (Swagger UI)", "Documentation", {"text/html": text}),
        "docs_asset": Operation(
            "The documentation page's scripts, styles and icon",
            "Documentation",
            {kind.split(";")[0]: text for kind in sorted(set(asset_types.values()))},
            {"asset": {"type": "string", "enum": sorted(asset_types)}},
        ),
    }


# Every error status, what it means, and a message as an example.
STATUSES: dict[int, tuple[str, str]] = {
    400: (
        "The body is not a JSON object, or a value is refused (empty text, too many inputs...).",
        "The request body is empty; send a JSON object.",
    ),
    401: ("No API key, or a wrong one: send `Authorization: Bearer <key>`.", "Incorrect API key provided."),
    404: ("No route at this path (a trailing slash, say), or no such asset.", "No route GET /docs/."),
    405: ("The path's route takes another method.", "GET is not allowed on /embed."),
    413: (
        "The request, an input (truncation off) or the response is larger than allowed.",
        "The request body is 7340032 bytes, over the 6291456 bytes a synchronous Lambda invocation accepts.",
    ),
    422: ("A field is missing, or of the wrong type.", "Invalid `input`: Field required."),
    500: ("An internal error (logged).", "Internal error; it has been logged."),
    503: (
        "The work cannot finish before the request's deadline, or the document store is unavailable.",
        "No document store is configured.",
    ),
}
# Statuses every route can answer (app.http_error, app.guarded), and those of an endpoint that reads
# and validates a body and runs the model (app.ModelEndpoint).
EVERY_ROUTE = (404, 405, 500)
READS_A_BODY = (400, 413, 422, 503)


def error_statuses(spec: RouteSpec, settings: Settings, *, reads_a_body: bool) -> list[int]:
    """The error statuses a route can answer."""
    statuses = set(EVERY_ROUTE) | (set(READS_A_BODY) if reads_a_body else set())
    if settings.auth_enabled and not spec.open_to_all(settings):
        statuses.add(401)
    return sorted(statuses)


def openapi_document(
    routes: tuple[RouteSpec, ...],
    settings: Settings,
    request_models: dict[str, type[BaseModel]],
    asset_types: dict[str, str],
) -> dict[str, Any]:
    """The OpenAPI 3.1 document: `request_models` maps endpoint names to the model each validates with."""
    described = operations(asset_types)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((model, "validation") for model in request_models.values()),
        *((op.success, "serialization") for op in described.values() if isinstance(op.success, type)),
    ]
    refs, top = models_json_schema(models, ref_template=SCHEMAS + "{model}")
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        operation = described[spec.endpoint]
        request = request_models.get(spec.endpoint)
        success: Any = operation.success
        content = (
            {JSON: {"schema": refs[(success, "serialization")]}} if isinstance(success, type) else success
        )
        item: dict[str, Any] = {
            "operationId": operation_id(spec),
            "summary": operation.summary,
            "tags": [operation.tag],
            "responses": {"200": {"description": "OK", "content": content}},
        }
        item["responses"].update(
            {
                str(status): {"$ref": f"#/components/responses/{spec.dialect.name}{status}"}
                for status in error_statuses(spec, settings, reads_a_body=request is not None)
            }
        )
        if request is not None:
            item["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": refs[(request, "validation")]}},
            }
        if operation.parameters:
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": schema}
                for name, schema in operation.parameters.items()
            ]
        if "401" in item["responses"]:
            item["security"] = [{BEARER: []}]
        paths.setdefault(spec.path, {})[spec.method.lower()] = item
    components: dict[str, Any] = {
        "schemas": {**top.get("$defs", {}), **error_schemas()},
        "responses": error_responses(),
    }
    if settings.auth_enabled:
        components["securitySchemes"] = {
            BEARER: {"type": "http", "scheme": "bearer", "description": "One of the API keys."}
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Embeddings API",
            "version": "1",
            "description": (
                f"Sentence embeddings from `{settings.model_id}`: OpenAI's embeddings API, "
                "text-embeddings-inference's /embed, and search over the indexed documents. Errors "
                "come in the route's dialect: OpenAI's `{error: {...}}` or TEI's `{error, error_type}`."
            ),
        },
        "servers": [{"url": ".", "description": "this server"}],
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in described.values())],
        "paths": paths,
        "components": components,
    }


def operation_id(spec: RouteSpec) -> str:
    """`postV1Embeddings`, `getDocsAsset`: camelCase (Swagger UI's deep links read `_` as a space)."""
    words: list[str] = re.findall(r"[A-Za-z0-9]+", f"{spec.method} {spec.path}")
    first, *rest = words
    return first.lower() + "".join(word.capitalize() for word in rest)


def error_classes() -> list[type[ServiceError]]:
    """`ServiceError` and every subclass of it."""
    found: list[type[ServiceError]] = []
    queue: list[type[ServiceError]] = [ServiceError]
    while queue:
        kind = queue.pop(0)
        found.append(kind)
        queue.extend(kind.__subclasses__())
    return found


def error_schemas() -> dict[str, Any]:
    """Both dialects' error bodies (`http.error_response`), with every type name `errors.py` has."""
    classes = error_classes()
    nullable = {"type": ["string", "null"]}
    openai_body = {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "additionalProperties": False,
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string", "enum": sorted({kind.openai_type for kind in classes})},
            "param": {**nullable, "description": "The request field at fault."},
            "code": {**nullable, "description": "A machine-readable reason, when there is one."},
        },
    }
    tei_type = {"type": "string", "enum": sorted({kind.tei_type for kind in classes})}
    return {
        "OpenAIError": closed({"error": openai_body}, description="OpenAI's error shape."),
        "TEIError": closed(
            {"error": {"type": "string"}, "error_type": tei_type},
            description="text-embeddings-inference's error shape.",
        ),
    }


def error_responses() -> dict[str, Any]:
    """`OPENAI404`, `TEI422`...: each status in each dialect, with the type names of that status only
    and an example rendered by `http.error_response` itself."""
    classes = error_classes()
    found: dict[str, Any] = {}
    for status, (description, message) in STATUSES.items():
        kinds = [kind for kind in classes if kind.status_code == status]
        for dialect in Dialect:
            narrowed: dict[str, Any]
            if dialect is Dialect.OPENAI:
                types = sorted({kind.openai_type for kind in kinds})
                narrowed = {"error": {"properties": {"type": {"enum": types}}}}
            else:
                narrowed = {"error_type": {"enum": sorted({kind.tei_type for kind in kinds})}}
            schema_name = "OpenAIError" if dialect is Dialect.OPENAI else "TEIError"
            example = orjson.loads(bytes(error_response(kinds[0](message), dialect).body))
            found[f"{dialect.name}{status}"] = {
                "description": description,
                "content": {
                    JSON: {
                        "schema": {"$ref": SCHEMAS + schema_name, "properties": narrowed},
                        "example": example,
                    }
                },
            }
            if status == 401:
                challenge = {"schema": {"const": "Bearer"}, "description": "The scheme to authenticate with."}
                found[f"{dialect.name}{status}"]["headers"] = {"WWW-Authenticate": challenge}
    return found


def closed(properties: dict[str, Any], *, description: str) -> dict[str, Any]:
    """An object with exactly these properties."""
    return {
        "type": "object",
        "description": description,
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }
