"""GET /openapi.json: a valid OpenAPI 3.1 document describing every route of the route table, its
request schema (the model the endpoint validates with), its success body and every error it can
answer, in its dialect's shape; real responses validate against what it documents."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from jsonschema import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import BaseModel, Field, StrictInt
from starlette.testclient import TestClient

from embedding_engine.api import app as app_module
from embedding_engine.api import openai, openapi, search, tei
from embedding_engine.api.routes import ROUTES, RouteSpec
from embedding_engine.auth import ApiKeys
from embedding_engine.embedder import Throughput
from embedding_engine.errors import ServiceError

KEY = {"Authorization": "Bearer s3cret"}
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "embeddings": openai.EmbeddingsRequest,
    "embed": tei.EmbedRequest,
    "search": search.SearchRequest,
}
PASSAGE = "Lighthouses guide ships past rocks at night with a beam that sweeps the sea. " * 12


def described(client: TestClient, **headers: str) -> dict[str, Any]:
    response = client.get("/openapi.json", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def url(spec: RouteSpec) -> str:
    return spec.path.replace("{asset}", "swagger-ui.css")


def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def check_body(document: dict[str, Any], spec: RouteSpec, status: int, body: Any) -> None:
    """`body` validates against the schema the document gives for this route and status."""
    responses = document["paths"][spec.path][spec.method.lower()]["responses"]
    assert str(status) in responses, f"{spec.method} {spec.path} answers {status}, undocumented"
    reference = responses[str(status)].get("$ref")
    at = (
        reference[1:] if reference else f"/paths/{escape(spec.path)}/{spec.method.lower()}/responses/{status}"
    )
    # The whole document as the root, so that its `#/components/...` references resolve.
    OAS31Validator({**document, "$ref": f"#{at}/content/application~1json/schema"}).validate(body)


@pytest.mark.parametrize("keys", [(), ("s3cret",)])
def test_the_document_is_valid_openapi_3_1(make_client: Any, keys: tuple[str, ...]) -> None:
    document = described(make_client(api_keys=keys), **(KEY if keys else {}))
    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": ".", "description": "this server"}]  # relative: any prefix
    assert ("securitySchemes" in document["components"]) == bool(keys)


def test_every_route_is_described_with_its_method(client: TestClient) -> None:
    document = described(client)
    assert {(spec.path, spec.method.lower()) for spec in ROUTES} == {
        (path, method) for path, item in document["paths"].items() for method in item
    }
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(set(operation_ids)) == len(ROUTES)


def test_the_request_schemas_are_the_models_own(client: TestClient) -> None:
    document = described(client)
    for spec in ROUTES:
        operation = document["paths"][spec.path][spec.method.lower()]
        model = REQUEST_MODELS.get(spec.endpoint)
        assert ("requestBody" in operation) == (model is not None), spec
        if model is not None:
            name = model.__name__
            assert operation["requestBody"]["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{name}"
            }
            own = model.model_json_schema(ref_template="#/components/schemas/{model}")
            assert document["components"]["schemas"][name] == own


def test_a_field_added_to_a_request_model_is_published(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class EmbeddingsRequest(openai.EmbeddingsRequest):
        priority: StrictInt | None = Field(None, description="A field the OpenAPI code never heard of.")

    monkeypatch.setattr(openai, "EmbeddingsRequest", EmbeddingsRequest)
    schema = described(make_client())["components"]["schemas"]["EmbeddingsRequest"]
    assert schema["properties"]["priority"]["description"] == "A field the OpenAPI code never heard of."


@pytest.fixture
def lighthouse(engine: Any) -> Iterator[str]:
    """One document indexed in the session's database, removed afterwards."""
    source = "s3://openapi-contract/lighthouse.txt"
    engine.indexer.index_document(
        source, data=PASSAGE.encode(), name=source, content_type=None, sequencer="1", version=None
    )
    yield source
    engine.store.delete_document(source, sequencer="2")


def test_real_success_responses_validate_against_the_documented_schemas(
    client: TestClient, lighthouse: str
) -> None:
    document = described(client)
    routes = {(spec.method, spec.path): spec for spec in ROUTES}
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/v1/embeddings", {"input": ["a lighthouse", "a ship"]}),
        ("POST", "/v1/embeddings", {"input": "a lighthouse", "encoding_format": "base64"}),
        ("POST", "/embeddings", {"input": "a lighthouse", "dimensions": 8}),
        ("POST", "/embed", {"inputs": ["a lighthouse", "a ship"]}),
        (
            "POST",
            "/search",
            {"query": "what guides ships at night?", "source_prefix": "s3://openapi-contract/"},
        ),
        ("POST", "/search", {"query": "lighthouse", "group_by": "document", "mode": "keyword"}),
        ("GET", "/health", None),
        ("GET", "/openapi.json", None),
    ]
    for method, path, payload in calls:
        response = client.request(method, path, json=payload)
        assert response.status_code == 200, response.text
        check_body(document, routes[(method, path)], 200, response.json())
    assert client.post("/search", json=calls[4][2]).json()["hits"][0]["source"] == lighthouse
    base64.b64decode(client.post("/v1/embeddings", json=calls[1][2]).json()["data"][0]["embedding"])


def test_the_success_schemas_are_closed(client: TestClient) -> None:
    """A field the code adds to a body, or drops from it, fails the test above."""
    document = described(client)
    health = next(spec for spec in ROUTES if spec.endpoint == "health")
    body = client.get("/health").json()
    with pytest.raises(ValidationError, match="Additional properties"):
        check_body(document, health, 200, {**body, "new_field": 1})
    with pytest.raises(ValidationError, match="is a required property"):
        check_body(document, health, 200, {name: value for name, value in body.items() if name != "model"})


def answers(client: TestClient, **requests: tuple[str, str, dict[str, Any]]) -> dict[int, Any]:
    """The body of each error the requests are answered with, by status."""
    found = {}
    for name, (method, path, kwargs) in requests.items():
        response = client.request(method, path, **kwargs)
        assert response.status_code >= 400, (name, method, path, response.text)
        assert response.headers["content-type"] == "application/json"
        found[response.status_code] = response.json()
    return found


def check_errors(document: dict[str, Any], spec: RouteSpec, answered: dict[int, Any]) -> None:
    """Each error answered is documented for the route, in its dialect, and its body validates."""
    responses = document["paths"][spec.path][spec.method.lower()]["responses"]
    for status, body in answered.items():
        assert responses[str(status)] == {"$ref": f"#/components/responses/{spec.dialect.name}{status}"}
        check_body(document, spec, status, body)


def test_every_error_a_route_answers_is_documented_in_its_dialect(
    make_client: Any, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each route is made to answer every error it can (500 aside: below), API keys on: the statuses
    answered are exactly those documented for it, and each body validates against its dialect's shape."""
    document = described(make_client(api_keys=("s3cret",)), **KEY)
    small = make_client(api_keys=("s3cret",), max_request_bytes=64)
    # At 200 tokens/s, 64 passages need far more than 2 s: refused with a 503 before the model runs.
    monkeypatch.setattr(engine.embedder, "throughput", Throughput(tokens_per_second=200.0))
    slow = make_client(api_keys=("s3cret",), request_timeout_seconds=2.0)
    storeless = TestClient(app_module.create_app(replace(engine, indexer=None)))
    busy = {"embeddings": {"input": [PASSAGE] * 64}, "embed": {"inputs": [PASSAGE] * 64}}
    for spec in ROUTES:
        path, other = url(spec), "GET" if spec.method == "POST" else "POST"
        tries: dict[str, tuple[str, str, dict[str, Any]]] = {
            "trailing slash": (spec.method, path + "/", {"headers": KEY}),
            "other method": (other, path, {"headers": KEY}),
        }
        if not spec.public:
            tries["no key"] = (spec.method, path, {})
        if spec.endpoint == "docs_asset":
            tries["no such asset"] = ("GET", "/docs/nope.js", {"headers": KEY})
        if spec.endpoint in REQUEST_MODELS:
            tries["not JSON"] = (spec.method, path, {"content": b"{not json", "headers": KEY})
            tries["too large"] = (spec.method, path, {"content": b"{" + b" " * 100 + b"}", "headers": KEY})
            tries["no field"] = (spec.method, path, {"json": {}, "headers": KEY})
        answered = answers(small, **tries)
        if spec.endpoint == "search":
            answered |= answers(storeless, unavailable=("POST", path, {"json": {"query": "ships"}}))
        elif spec.endpoint in REQUEST_MODELS:
            late = (spec.method, path, {"json": busy[spec.endpoint], "headers": KEY})
            answered |= answers(slow, too_late=late)
        documented = document["paths"][spec.path][spec.method.lower()]["responses"]
        assert set(documented) - {"200", "500"} == {str(status) for status in answered}, spec
        check_errors(document, spec, answered)


def test_an_internal_error_is_documented_on_every_route(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = described(make_client(api_keys=("s3cret",)), **KEY)

    def fail(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ApiKeys, "check", fail)  # every route but the public one
    monkeypatch.setattr(app_module, "health_report", fail)
    broken = make_client(api_keys=("s3cret",))
    for spec in ROUTES:
        check_errors(document, spec, answers(broken, bug=(spec.method, url(spec), {})))


def test_every_error_status_is_described() -> None:
    assert {kind.status_code for kind in openapi.error_classes()} == set(openapi.STATUSES)
    assert ServiceError in openapi.error_classes()


# --------------------------------------------------------------------------------------------------
# DOCS_PUBLIC, the page and its files.
# --------------------------------------------------------------------------------------------------
