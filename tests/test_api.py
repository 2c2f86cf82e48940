"""The HTTP contracts: OpenAI's /v1/embeddings (with the official client) and TEI's /embed."""

from __future__ import annotations

import base64
import re
from typing import Any

import numpy as np
import pytest
from openai import OpenAI
from starlette.testclient import TestClient

from helpers import cosine_rows

TEXTS = [
    "How do I keep a Lambda function warm?",
    "Embeddings map text to vectors.",
    "Das Modell läuft auf der CPU.",
]
LONG_TEXT = "Serverless vector search over many documents. " * 200


def decode_base64(value: str) -> Any:
    return np.frombuffer(base64.b64decode(value), dtype="<f4")


def embeddings_of(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)


def test_openai_float_response_matches_the_model(client: TestClient, reference_model: Any) -> None:
    response = client.post("/v1/embeddings", json={"input": TEXTS, "model": "text-embedding-3-small"})
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert {item["object"] for item in body["data"]} == {"embedding"}
    vectors = embeddings_of(response)
    assert vectors.shape == (3, 384)
    assert cosine_rows(vectors, reference_model.encode(TEXTS)).min() >= 0.9999


def test_usage_counts_the_models_own_tokens(client: TestClient, reference_model: Any) -> None:
    body = client.post("/v1/embeddings", json={"input": TEXTS}).json()
    expected = sum(len(ids) for ids in reference_model.tokenizer(TEXTS)["input_ids"])
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


def test_base64_and_float_decode_to_the_same_vectors(client: TestClient) -> None:
    floats = embeddings_of(client.post("/v1/embeddings", json={"input": TEXTS}))
    response = client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64"})
    assert response.status_code == 200
    decoded = np.stack([decode_base64(item["embedding"]) for item in response.json()["data"]])
    np.testing.assert_allclose(decoded, floats, rtol=1e-6, atol=1e-7)


def test_dimensions_truncate_then_renormalise(client: TestClient) -> None:
    full = embeddings_of(client.post("/v1/embeddings", json={"input": TEXTS}))
    short = embeddings_of(client.post("/v1/embeddings", json={"input": TEXTS, "dimensions": 64}))
    assert short.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    assert cosine_rows(short, full[:, :64]).min() >= 0.9999


def test_an_over_long_input_is_truncated_to_the_max_sequence_length(
    client: TestClient, reference_model: Any
) -> None:
    response = client.post("/v1/embeddings", json={"input": LONG_TEXT})
    assert response.json()["usage"]["prompt_tokens"] == reference_model.max_seq_length
    expected = reference_model.encode([LONG_TEXT])
    assert cosine_rows(embeddings_of(response), expected).min() >= 0.9999


def test_the_official_openai_client_default_base64(client: TestClient, reference_model: Any) -> None:
    openai_client = OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    result = openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    assert result.model == "sentence-transformers/all-MiniLM-L6-v2"
    vectors = np.array([item.embedding for item in result.data])
    assert cosine_rows(vectors, reference_model.encode(TEXTS)).min() >= 0.9999
    assert result.usage.prompt_tokens > 0


def test_the_official_openai_client_float_and_dimensions(client: TestClient) -> None:
    openai_client = OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    result = openai_client.embeddings.create(
        model="m", input="one text", encoding_format="float", dimensions=128
    )
    [item] = result.data
    assert len(item.embedding) == 128
    assert abs(np.linalg.norm(item.embedding) - 1.0) < 1e-5


def test_tei_embed_matches_the_model(client: TestClient, reference_model: Any) -> None:
    response = client.post("/embed", json={"inputs": TEXTS})
    assert response.status_code == 200
    vectors = np.array(response.json(), dtype=np.float32)
    assert cosine_rows(vectors, reference_model.encode(TEXTS)).min() >= 0.9999
    single = client.post("/embed", json={"inputs": TEXTS[0]}).json()
    assert len(single) == 1 and len(single[0]) == 384


def test_tei_normalize_false_returns_raw_pooled_vectors(client: TestClient) -> None:
    raw = np.array(client.post("/embed", json={"inputs": TEXTS, "normalize": False}).json())
    unit = np.array(client.post("/embed", json={"inputs": TEXTS}).json())
    assert np.all(np.abs(np.linalg.norm(raw, axis=1) - 1.0) > 0.01)
    assert cosine_rows(raw, unit).min() >= 0.9999


def test_tei_truncate_true_accepts_long_input(client: TestClient, reference_model: Any) -> None:
    response = client.post("/embed", json={"inputs": [LONG_TEXT], "truncate": True})
    assert response.status_code == 200
    assert cosine_rows(np.array(response.json()), reference_model.encode([LONG_TEXT])).min() >= 0.9999


OPENAI = "/v1/embeddings"
TEI = "/embed"
SEARCH = "/search"
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (id, path, request kwargs, status, fragment of the message)
    ("not-json", OPENAI, {"content": b'{"input": "a"'}, 400, "not valid JSON"),
    ("empty-body", OPENAI, {"content": b""}, 400, "empty"),
    ("json-array", OPENAI, {"json": ["a"]}, 400, "JSON object"),
    ("missing-input", OPENAI, {"json": {"model": "m"}}, 422, "input"),
    ("input-number", OPENAI, {"json": {"input": 5}}, 422, "string or an array of strings"),
    ("input-mixed", OPENAI, {"json": {"input": ["a", 3]}}, 422, "item 1 is a number"),
    ("input-empty-list", OPENAI, {"json": {"input": []}}, 400, "must not be empty"),
    ("input-empty-string", OPENAI, {"json": {"input": ["a", ""]}}, 400, "index 1"),
    ("token-ids", OPENAI, {"json": {"input": [101, 2023, 102]}}, 400, "token ids"),
    ("token-id-lists", OPENAI, {"json": {"input": [[101, 102]]}}, 400, "check_embedding_ctx_length=False"),
    ("bad-format", OPENAI, {"json": {"input": "a", "encoding_format": "hex"}}, 422, "encoding_format"),
    ("dimensions-zero", OPENAI, {"json": {"input": "a", "dimensions": 0}}, 400, "between 1 and 384"),
    ("dimensions-too-big", OPENAI, {"json": {"input": "a", "dimensions": 385}}, 400, "between 1 and 384"),
    ("dimensions-string", OPENAI, {"json": {"input": "a", "dimensions": "8"}}, 422, "dimensions"),
    ("tei-over-long", TEI, {"json": {"inputs": LONG_TEXT}}, 413, "must have less than 256 tokens"),
    ("tei-missing-inputs", TEI, {"json": {"input": "a"}}, 422, "inputs"),
    ("tei-normalize-string", TEI, {"json": {"inputs": "a", "normalize": "yes"}}, 422, "normalize"),
    ("tei-left-truncation", TEI, {"json": {"inputs": "a", "truncation_direction": "Left"}}, 400, "Right"),
    ("tei-not-json", TEI, {"content": b"inputs=a"}, 400, "not valid JSON"),
    ("tei-empty-string", TEI, {"json": {"inputs": ""}}, 400, "empty"),
    # JSON's names for types (null, a number, an array, an object), never Python's.
    ("body-null", OPENAI, {"content": b"null"}, 400, "not null"),
    ("body-number", OPENAI, {"content": b"5"}, 400, "not a number"),
    ("body-not-utf8", OPENAI, {"content": b'{"input": "caf\xe9"}'}, 400, "not valid UTF-8"),
    ("input-null", OPENAI, {"json": {"input": None}}, 422, "not null"),
    ("input-object", OPENAI, {"json": {"input": {"text": "a"}}}, 422, "not an object"),
    ("input-nested-array", OPENAI, {"json": {"input": [["a"]]}}, 422, "item 0 is an array"),
    ("input-null-item", OPENAI, {"json": {"input": ["a", None]}}, 422, "item 1 is null"),
    (
        "model-number",
        OPENAI,
        {"json": {"input": "a", "model": 5}},
        422,
        "`model`: Input should be a valid string",
    ),
    ("dimensions-float", OPENAI, {"json": {"input": "a", "dimensions": 8.5}}, 422, "valid integer"),
    ("tei-inputs-null", TEI, {"json": {"inputs": None}}, 422, "not null"),
    ("tei-inputs-boolean", TEI, {"json": {"inputs": True}}, 422, "not a boolean"),
    ("tei-truncate-null", TEI, {"json": {"truncate": None, "inputs": "a"}}, 422, "truncate"),
    ("search-query-null", SEARCH, {"json": {"query": None}}, 422, "`query`: Input should be a valid string"),
    (
        "search-k-string",
        SEARCH,
        {"json": {"query": "a", "k": "3"}},
        422,
        "`k`: Input should be a valid integer",
    ),
    (
        "search-prefix-array",
        SEARCH,
        {"json": {"query": "a", "source_prefix": ["s3://"]}},
        422,
        "source_prefix",
    ),
]
# Python's names for types and errors, which a caller of a JSON API should never have to read ("float"
# is not one of them here: it is an `encoding_format`; a quoted word is a value a field accepts).
PYTHON_NAMES = re.compile(r"(?<!')\b(NoneType|dict|tuple|str|int|bool|\w*Error)\b(?!')")


def assert_error_shape(response: Any, path: str, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if path == TEI:
        assert set(body) == {"error", "error_type"}
        message = body["error"]
    else:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        message = body["error"]["message"]
    assert fragment in message
    assert not PYTHON_NAMES.search(message), message


@pytest.mark.parametrize(
    ("path", "request_kwargs", "status", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_clear_error(
    client: TestClient, path: str, request_kwargs: dict[str, Any], status: int, fragment: str
) -> None:
    assert_error_shape(client.post(path, **request_kwargs), path, status, fragment)


@pytest.mark.parametrize(
    ("overrides", "path", "payload", "status", "fragment"),
    [
        ({"max_inputs": 2}, OPENAI, {"input": TEXTS}, 400, "at most 2"),
        ({"max_inputs": 2}, TEI, {"inputs": TEXTS}, 400, "at most 2"),
        ({"max_total_tokens": 10}, OPENAI, {"input": TEXTS}, 400, "over the limit of 10 tokens"),
        ({"max_request_bytes": 64}, OPENAI, {"input": TEXTS}, 413, "over the 64 bytes"),
        ({"max_response_bytes": 4000}, OPENAI, {"input": TEXTS}, 413, "encoding_format='base64'"),
        ({"max_response_bytes": 9000}, TEI, {"inputs": TEXTS}, 413, "fewer inputs"),
        ({"strict_model": True}, OPENAI, {"input": "a", "model": "gpt-4"}, 400, "not served here"),
    ],
    ids=["inputs", "tei-inputs", "tokens", "request-size", "response-size", "tei-response", "strict"],
)
def test_limits_get_a_clear_error(
    make_client: Any, overrides: dict[str, Any], path: str, payload: Any, status: int, fragment: str
) -> None:
    assert_error_shape(make_client(**overrides).post(path, json=payload), path, status, fragment)


def test_a_response_that_fits_in_base64_passes_where_float_would_not(make_client: Any) -> None:
    limited = make_client(max_response_bytes=12_000)
    assert limited.post(OPENAI, json={"input": TEXTS}).status_code == 413
    assert limited.post(OPENAI, json={"input": TEXTS, "encoding_format": "base64"}).status_code == 200


def test_strict_mode_accepts_the_served_model(make_client: Any) -> None:
    strict = make_client(strict_model=True)
    response = strict.post(OPENAI, json={"input": "a", "model": "sentence-transformers/all-MiniLM-L6-v2"})
    assert response.status_code == 200


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert_error_shape(client.get("/v2/whatever"), OPENAI, 404, "Routes:")
    assert_error_shape(client.get(OPENAI), OPENAI, 405, "GET is not allowed")
    assert_error_shape(client.get(TEI), TEI, 405, "GET is not allowed")
    assert "Did you mean" not in client.get("/v2/whatever/").json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/v1/embeddings/", OPENAI),
        ("POST", "/embeddings//", "/embeddings"),
        ("POST", "/embed/", TEI),
        ("POST", "/search/", SEARCH),
        ("GET", "/health/", "/health"),
    ],
)
def test_a_trailing_slash_is_a_404_naming_the_route_never_a_redirect(
    client: TestClient, method: str, path: str, route: str
) -> None:
    """Starlette would answer 307 with a Location built from the Host header (an open redirect)."""
    response = client.request(
        method, path, json={"input": "a"}, headers={"host": "evil.example"}, follow_redirects=False
    )
    assert "location" not in response.headers
    assert_error_shape(response, TEI if route == TEI else OPENAI, 404, f"Did you mean {route}")


@pytest.mark.parametrize(
    ("path", "base", "fields"),
    [
        (OPENAI, {"input": "a"}, ["input", "model", "encoding_format", "dimensions", "user"]),
        (TEI, {"inputs": "a"}, ["inputs", "normalize", "truncate", "truncation_direction", "dimensions"]),
        (SEARCH, {"query": "a"}, ["query", "k", "source_prefix"]),
    ],
)
def test_no_error_message_names_a_python_type(
    client: TestClient, path: str, base: dict[str, Any], fields: list[str]
) -> None:
    """Every field of every endpoint, given every JSON type: whatever is refused is refused in JSON's
    words."""
    for field in fields:
        for value in (None, True, 7, 2.5, "x", [], ["a", 1], [["a"]], {}, {"a": None}):
            response = client.post(path, json={**base, field: value})
            if response.status_code < 400:
                continue
            body = response.json()
            message = body["error"] if path == TEI else body["error"]["message"]
            assert not PYTHON_NAMES.search(message), (field, value, message)


def test_health_reports_the_model_and_init(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert body["dimensions"] == 384
    assert body["max_sequence_length"] == 256
    assert body["load_strategy"] == "cpu"
    assert set(body["timings_ms"]) == {
        "imports",
        "load",
        "warmup",
        "throughput",
        "store",
        "http_warmup",
        "total",
    }
    assert body["document_store"] == "configured"
    assert all(value > 0 for value in body["timings_ms"].values())
    assert body["init_cold_start"] is True
    assert body["initialization_type"] is None
