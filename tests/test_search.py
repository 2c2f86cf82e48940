"""POST /search, the contract: documents indexed by the warm engine, searched through the app."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

CORPUS = {
    "s3://corpus/animals/bees.txt": "Honeybees turn flower nectar into honey and store it in wax combs.",
    "s3://corpus/animals/whales.txt": "Humpback whales sing long songs and migrate thousands of kilometres.",
    "s3://corpus/kitchen/sourdough.txt": "Sourdough bread rises with a starter of wild yeast and flour.",
    "s3://corpus/kitchen/pasta.txt": "Fresh pasta needs eggs and flour, kneaded and rolled thin.",
    "s3://corpus/earth/volcanoes.txt": "Volcanoes erupt when magma rises through cracks in the crust.",
}
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def corpus(engine: Any, database_url: str) -> dict[str, str]:
    """The tables emptied, then CORPUS indexed (one chunk per document) by the engine's indexer."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE chunks, documents")
    for source, text in CORPUS.items():
        engine.indexer.index_document(
            source, data=text.encode(), name=source, content_type=None, sequencer="1", version=None
        )
    return CORPUS


def hits(client: TestClient, payload: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/search", json=payload)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"hits"}
    found: list[dict[str, Any]] = response.json()["hits"]
    return found


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("how do bees make honey?", "s3://corpus/animals/bees.txt"),
        ("which animals sing underwater?", "s3://corpus/animals/whales.txt"),
        ("baking bread with wild yeast", "s3://corpus/kitchen/sourdough.txt"),
        ("making noodles from eggs", "s3://corpus/kitchen/pasta.txt"),
        ("molten rock and eruptions", "s3://corpus/earth/volcanoes.txt"),
    ],
)
def test_the_most_relevant_document_comes_first(
    client: TestClient, corpus: dict[str, str], query: str, source: str
) -> None:
    assert hits(client, {"query": query})[0]["source"] == source


def test_hits_carry_text_source_chunk_and_descending_scores(
    client: TestClient, corpus: dict[str, str]
) -> None:
    volcanoes = corpus["s3://corpus/earth/volcanoes.txt"]

    found = hits(client, {"query": volcanoes, "k": 4, "mode": "vector"})

    assert len(found) == 4
    keys = {"text", "source", "chunk", "score", "content_type", "indexed_at"}
    assert all(set(hit) == keys and hit["content_type"] == "text/plain" for hit in found)
    assert all(hit["text"] == corpus[hit["source"]] and hit["chunk"] == 0 for hit in found)
    scores = [hit["score"] for hit in found]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(score, float) and -1.0 <= score <= 1.0 for score in scores)
    # In vector mode the score is the cosine similarity: a document's own text scores (almost) 1.
    assert found[0]["text"] == volcanoes
    assert scores[0] == pytest.approx(1.0, abs=1e-4)
    assert scores[1] < 0.9


def test_k_bounds_the_number_of_hits(client: TestClient, corpus: dict[str, str]) -> None:
    assert len(hits(client, {"query": "food"})) == 5  # the default k, and all there is
    assert len(hits(client, {"query": "food", "k": 1})) == 1
    assert len(hits(client, {"query": "food", "k": 2})) == 2
    assert len(hits(client, {"query": "food", "k": 100})) == len(corpus)


def test_source_prefix_restricts_the_hits(client: TestClient, corpus: dict[str, str]) -> None:
    kitchen = hits(client, {"query": "how do bees make honey?", "source_prefix": "s3://corpus/kitchen/"})

    assert {hit["source"] for hit in kitchen} == {
        "s3://corpus/kitchen/sourdough.txt",
        "s3://corpus/kitchen/pasta.txt",
    }
    assert hits(client, {"query": "honey", "source_prefix": "s3://corpus/nowhere/"}) == []
    assert len(hits(client, {"query": "honey", "source_prefix": "s3://corpus/"})) == len(corpus)


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        pytest.param({"query": "honey", "k": 0}, 400, "k", id="k-0"),
        pytest.param({"query": "honey", "k": 101}, 400, "k", id="k-101"),
        pytest.param({"query": "honey", "k": -3}, 400, "k", id="k-negative"),
        pytest.param({"query": "honey", "k": "5"}, 422, "k", id="k-string"),
        pytest.param({"query": "honey", "k": 2.5}, 422, "k", id="k-float"),
        pytest.param({"query": ""}, 400, "query", id="query-empty"),
        pytest.param({"query": " \n\t "}, 400, "query", id="query-blank"),
        pytest.param({"k": 3}, 422, "query", id="query-missing"),
        pytest.param({"query": ["honey"]}, 422, "query", id="query-list"),
        pytest.param({"query": "honey", "source_prefix": 7}, 422, "source_prefix", id="prefix-number"),
    ],
)
def test_invalid_requests_get_openai_shaped_errors(
    client: TestClient, payload: dict[str, Any], status: int, param: str
) -> None:
    response = client.post("/search", json=payload)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if param == "k" and status == 400:
        assert "between 1 and 100" in error["message"]


def test_without_a_document_store_search_is_a_clear_503(engine: Any) -> None:
    from embedding_engine.api.app import create_app

    with TestClient(create_app(replace(engine, indexer=None))) as storeless:
        response = storeless.post("/search", json={"query": "honey"})

    assert response.status_code == 503
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["type"] == "server_error"
    assert "No document store is configured" in error["message"]
    assert "DATABASE_URL" in error["message"]
