"""POST /search's modes, grouping and filters, against the real model and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from embedding_engine.indexing.retrieval import RRF_K
from embedding_engine.indexing.search_sql import BM25_B, BM25_K1

DOCUMENTS = {
    "s3://lab/gaskets.md": (
        "text/markdown",
        "The ZQX-42 gasket seals the pump housing against coolant leaks.",
    ),
    "s3://lab/pumps.txt": ("text/plain", "Centrifugal pumps move coolant through the engine block."),
    "s3://lab/volcanoes.html": ("text/html", "<p>Volcanoes erupt when magma rises through the crust.</p>"),
    "s3://lab/bread.txt": ("text/plain", "Sourdough bread rises with a starter of wild yeast."),
}


@pytest.fixture(scope="module")
def lab(engine: Any, database_url: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE chunks, documents")
    for source, (content_type, text) in DOCUMENTS.items():
        engine.indexer.index_document(
            source, data=text.encode(), name=source, content_type=content_type, sequencer="1", version=None
        )
    return DOCUMENTS


def search(client: TestClient, **payload: Any) -> list[dict[str, Any]]:
    response = client.post("/search", json=payload)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["hits"]
    return found


def test_keyword_mode_finds_a_rare_code_and_stems_words(client: TestClient, lab: Any) -> None:
    [hit] = search(client, query="zqx-42", mode="keyword")
    assert hit["source"] == "s3://lab/gaskets.md"
    assert hit["content_type"] == "text/markdown"
    # "volcano" matches "Volcanoes" (English stemming); words no chunk holds match nothing.
    assert [h["source"] for h in search(client, query="volcano", mode="keyword")] == [
        "s3://lab/volcanoes.html"
    ]
    assert search(client, query="quantum chromodynamics", mode="keyword") == []


def test_keyword_scores_are_okapi_bm25(client: TestClient, lab: Any, database_url: str) -> None:
    """The score of each hit, recomputed here from PostgreSQL's own lexemes with the textbook formula."""
    query = "coolant pump leaks"
    with psycopg.connect(database_url) as connection:
        terms = {
            row[0]
            for row in connection.execute(
                "SELECT unnest(tsvector_to_array(to_tsvector('english', %s)))", (query,)
            )
        }
        chunks: dict[str, dict[str, int]] = {
            source: dict(
                connection.execute(
                    "SELECT lexeme, cardinality(positions) FROM chunks, unnest(tsv) WHERE source = %s",
                    (source,),
                ).fetchall()
            )
            for source in DOCUMENTS
        }
    average = sum(len(lexemes) for lexemes in chunks.values()) / len(chunks)

    def bm25(lexemes: dict[str, int]) -> float:
        score = 0.0
        for term in terms & set(lexemes):
            found = sum(term in other for other in chunks.values())
            idf = math.log(1 + (len(chunks) - found + 0.5) / (found + 0.5))
            tf = lexemes[term]
            score += (
                idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * len(lexemes) / average))
            )
        return score

    found = search(client, query=query, mode="keyword", k=10)
    assert [hit["source"] for hit in found] == ["s3://lab/gaskets.md", "s3://lab/pumps.txt"]
    for hit in found:
        assert hit["score"] == pytest.approx(bm25(chunks[hit["source"]]), abs=1e-5)


def test_hybrid_fuses_the_two_rankings_by_reciprocal_rank(client: TestClient, lab: Any) -> None:
    query = "ZQX-42 gasket"
    vector = [hit["source"] for hit in search(client, query=query, mode="vector", k=4)]
    keyword = [hit["source"] for hit in search(client, query=query, mode="keyword", k=4)]
    fused = search(client, query=query, mode="hybrid", k=4)

    def rrf(source: str) -> float:
        return sum(
            1 / (RRF_K + ranking.index(source) + 1) for ranking in (vector, keyword) if source in ranking
        )

    assert [hit["source"] for hit in fused] == sorted(vector, key=lambda s: (-rrf(s), s))
    assert [hit["score"] for hit in fused] == [pytest.approx(rrf(hit["source"]), abs=1e-6) for hit in fused]
    assert search(client, query=query)[0]["score"] == fused[0]["score"]  # hybrid is the default


@pytest.fixture
def many_chunks(engine: Any, database_url: str) -> Iterator[None]:
    """30 documents of 4 chunks each under s3://reports/, removed afterwards."""
    from embedding_engine.indexing.store import StoredChunk

    for document in range(30):
        texts = [f"Report {document}, part {part}: river flooding and levee repairs." for part in range(4)]
        chunks = [
            StoredChunk(index=i, text=text, embedding=vector)
            for i, (text, vector) in enumerate(zip(texts, engine.embedder.embed(texts), strict=True))
        ]
        engine.store.replace_document(
            f"s3://reports/{document:02}.txt", sequencer="1", version=None, chunks=chunks, metadata={}
        )
    yield
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DELETE FROM documents WHERE starts_with(source, 's3://reports/')")


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_group_by_document_returns_each_document_once_with_its_best_chunk(
    client: TestClient, many_chunks: None, mode: str
) -> None:
    query = {"query": "river flooding levee", "mode": mode, "source_prefix": "s3://reports/"}
    chunks = search(client, **query, k=25)
    assert len(chunks) == 25 and len({hit["source"] for hit in chunks}) < 25  # chunks repeat documents

    documents = search(client, **query, k=25, group_by="document")

    assert len(documents) == 25
    assert len({hit["source"] for hit in documents}) == 25
    best = search(client, **query, k=100)
    first_seen: dict[str, int] = {}
    for hit in best:
        first_seen.setdefault(hit["source"], hit["chunk"])
    if mode != "hybrid":  # hybrid fuses documents' ranks, so its order is its own
        assert [(hit["source"], hit["chunk"]) for hit in documents] == list(first_seen.items())[:25]


def test_filters_by_content_type_and_time_indexed(client: TestClient, lab: Any) -> None:
    query = "coolant"
    plain = search(client, query=query, content_type="text/plain", k=10)
    assert {hit["source"] for hit in plain} == {"s3://lab/pumps.txt", "s3://lab/bread.txt"}
    either = search(client, query=query, content_type=["text/markdown", "text/html"], k=10)
    assert {hit["source"] for hit in either} == {"s3://lab/gaskets.md", "s3://lab/volcanoes.html"}
    now = datetime.now(UTC)
    assert search(client, query=query, indexed_after=(now + timedelta(minutes=1)).isoformat()) == []
    before = search(client, query=query, indexed_before=(now + timedelta(minutes=1)).isoformat(), k=10)
    assert len(before) == 4
    for hit in before:
        assert datetime.fromisoformat(hit["indexed_at"]) <= now


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        ({"mode": "semantic"}, 422, "mode"),
        ({"group_by": "page"}, 422, "group_by"),
        ({"content_type": "application/msword"}, 400, "content_type"),
        (
            {"indexed_after": "2026-01-02T00:00:00Z", "indexed_before": "2026-01-01T00:00:00Z"},
            400,
            "indexed_after",
        ),
        ({"indexed_after": "2026-01-02T00:00:00"}, 422, "indexed_after"),  # no time zone
        ({"query": "   "}, 400, "query"),
    ],
)
def test_bad_search_options_are_refused_with_the_field_named(
    client: TestClient, lab: Any, payload: dict[str, Any], status: int, param: str
) -> None:
    response = client.post("/search", json={"query": "coolant", **payload})
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
