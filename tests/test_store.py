"""The document store against a real PostgreSQL + pgvector: ordering, guards, reconnection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from embedding_engine.errors import SettingsError, StoreMismatchError
from embedding_engine.indexing.search_sql import SearchFilters
from embedding_engine.indexing.store import (
    ChunkStore,
    StoredChunk,
    chunk_id,
    normalize_sequencer,
)
from embedding_engine.secrets import database_url_from_secret


@pytest.fixture
def store(engine: Any, database_url: str) -> Iterator[ChunkStore]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE chunks, documents")
    yield engine.store


def stored(engine: Any, texts: list[str]) -> list[StoredChunk]:
    vectors = engine.embedder.embed(texts)
    return [
        StoredChunk(index=i, text=text, embedding=vector)
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]


def rows(database_url: str, source: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT id, chunk_index, text FROM chunks WHERE source = %s ORDER BY chunk_index", (source,)
        ).fetchall()


@pytest.mark.parametrize(
    ("older", "newer"),
    [("0055B9A1", "0055B9A2"), ("FF", "0100"), ("9", "10"), ("617f08299329d189", "617F0829932A0000")],
)
def test_sequencers_compare_as_hexadecimal_numbers(older: str, newer: str) -> None:
    assert normalize_sequencer(older) < normalize_sequencer(newer)
    assert normalize_sequencer(newer.lower()) == normalize_sequencer(newer.upper())


@pytest.mark.parametrize("bad", ["", "  ", "0x12", "12g4"])
def test_a_sequencer_must_be_hexadecimal(bad: str) -> None:
    with pytest.raises(ValueError, match="hexadecimal"):
        normalize_sequencer(bad)


def test_replace_is_ordered_by_sequencer(store: ChunkStore, engine: Any, database_url: str) -> None:
    source = "s3://docs/guide.txt"
    assert store.replace_document(
        source, sequencer="20", version="v2", chunks=stored(engine, ["new"]), metadata={}
    )
    # A redelivery of the same event, then an older one: neither changes anything.
    assert not store.replace_document(
        source, sequencer="20", version="v2", chunks=stored(engine, ["x"]), metadata={}
    )
    assert not store.replace_document(
        source, sequencer="1F", version="v1", chunks=stored(engine, ["old"]), metadata={}
    )
    assert [row[2] for row in rows(database_url, source)] == ["new"]
    assert store.has_applied(source, "1f") and store.has_applied(source, "20")
    assert not store.has_applied(source, "21")


def test_a_delete_leaves_a_tombstone_that_an_older_create_cannot_pass(
    store: ChunkStore, engine: Any, database_url: str
) -> None:
    source = "s3://docs/gone.txt"
    store.replace_document(
        source, sequencer="10", version="v1", chunks=stored(engine, ["a", "b"]), metadata={}
    )
    assert store.delete_document(source, sequencer="12")
    assert not store.replace_document(
        source, sequencer="11", version="v1", chunks=stored(engine, ["a"]), metadata={}
    )
    assert rows(database_url, source) == []
    with psycopg.connect(database_url) as connection:
        deleted = connection.execute("SELECT deleted FROM documents WHERE source = %s", (source,)).fetchone()
    assert deleted == (True,)
    assert store.replace_document(
        source, sequencer="13", version="v2", chunks=stored(engine, ["c"]), metadata={}
    )
    assert [row[2] for row in rows(database_url, source)] == ["c"]


def test_chunk_ids_are_stable_and_unique(store: ChunkStore, engine: Any, database_url: str) -> None:
    source = "s3://docs/ids.txt"
    store.replace_document(
        source, sequencer="1", version=None, chunks=stored(engine, ["a", "b", "c"]), metadata={}
    )
    first = [row[0] for row in rows(database_url, source)]
    store.replace_document(
        source, sequencer="2", version=None, chunks=stored(engine, ["a", "b", "c"]), metadata={}
    )
    assert [row[0] for row in rows(database_url, source)] == first == [chunk_id(source, i) for i in range(3)]
    assert len(set(first)) == 3


def test_search_ranks_by_cosine_and_filters_by_prefix(store: ChunkStore, engine: Any) -> None:
    texts = ["a recipe for sourdough bread", "lighthouses guide ships at night", "the stock market fell"]
    for index, text in enumerate(texts):
        folder = "kitchen" if index == 0 else "misc"
        store.replace_document(
            f"s3://docs/{folder}/{index}.txt",
            sequencer="1",
            version=None,
            chunks=stored(engine, [text]),
            metadata={},
        )
    [query] = engine.embedder.embed(["how to bake bread"])
    hits = store.nearest_chunks(query, limit=3, filters=SearchFilters())
    assert hits[0].text == texts[0]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    filtered = store.nearest_chunks(query, limit=3, filters=SearchFilters("s3://docs/misc/"))
    assert {hit.source for hit in filtered} == {"s3://docs/misc/1.txt", "s3://docs/misc/2.txt"}
    # LIKE wildcards in a prefix are literal characters, not patterns.
    assert store.nearest_chunks(query, limit=3, filters=SearchFilters("s3://docs/%")) == []


def test_an_index_built_with_other_vectors_under_the_same_model_id_is_refused(
    store: ChunkStore, engine: Any, database_url: str
) -> None:
    """Each model id has its own index (tests/test_indexes.py); the same id with vectors of another
    size means MODEL_ID names another model: refused, never mixed."""
    store.connect()
    with pytest.raises(StoreMismatchError, match=r"own MODEL_ID .* must never be mixed"):
        ChunkStore(database_url, model_id=engine.embedder.model_id, dimensions=768).connect()


def test_a_dropped_connection_is_reopened(store: ChunkStore, engine: Any, database_url: str) -> None:
    store.connect()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert store.replace_document(
        "s3://docs/after.txt",
        sequencer="1",
        version=None,
        chunks=stored(engine, ["still works"]),
        metadata={},
    )


def test_database_url_from_a_secret() -> None:
    url = "postgresql://app:pw@db.example.internal:5432/embeddings"
    assert database_url_from_secret(url) == url
    fields = {
        "username": "app",
        "password": "p@ss:w/rd",
        "host": "proxy.internal",
        "port": 5432,
        "dbname": "rag",
    }
    rds = json.dumps(fields)
    assert database_url_from_secret(rds) == "postgresql://app:p%40ss%3Aw%2Frd@proxy.internal:5432/rag"
    with pytest.raises(SettingsError, match="RDS-style JSON"):
        database_url_from_secret('{"host": "x"}')


def test_k_is_honoured_up_to_its_maximum(store: ChunkStore, engine: Any) -> None:
    """An HNSW scan returns at most `hnsw.ef_search` rows (40 by default), whatever the LIMIT: the
    search widens it to `k`, so asking for the maximum of 100 gets 100 when 100 exist."""
    generator = np.random.default_rng(7)
    dimensions = engine.embedder.dimensions
    for document in range(3):
        vectors = generator.normal(size=(100, dimensions)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = [StoredChunk(index=i, text=f"chunk {i}", embedding=v) for i, v in enumerate(vectors)]
        store.replace_document(
            f"s3://docs/{document}.txt", sequencer="1", version=None, chunks=chunks, metadata={}
        )
    [query] = engine.embedder.embed(["anything at all"])
    assert len(store.nearest_chunks(query, limit=100, filters=SearchFilters())) == 100
    assert len(store.nearest_chunks(query, limit=100, filters=SearchFilters("s3://docs/1"))) == 100


OLD_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE index_settings (id boolean PRIMARY KEY DEFAULT true CHECK (id), model_id text NOT NULL,
    dimensions integer NOT NULL);
CREATE TABLE documents (source text PRIMARY KEY, sequencer text NOT NULL, version text,
    deleted boolean NOT NULL DEFAULT false, chunk_count integer NOT NULL DEFAULT 0,
    metadata jsonb NOT NULL DEFAULT '{}', updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE chunks (id text PRIMARY KEY,
    source text NOT NULL REFERENCES documents (source) ON DELETE CASCADE, version text,
    sequencer text NOT NULL, chunk_index integer NOT NULL, text text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}', embedding vector(384) NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now(), UNIQUE (source, chunk_index));
"""


def test_a_database_from_before_keyword_search_is_upgraded_in_place(
    engine: Any, scratch_database: str
) -> None:
    """Made by the first release (no `tsv`, no `content_type`): the next start adds both, fills
    them for the rows already there, and keyword search finds those rows."""
    [vector] = engine.embedder.embed(["Volcanoes erupt when magma rises."])
    with psycopg.connect(scratch_database, autocommit=True) as connection:
        for statement in OLD_SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement.encode())
        connection.execute(
            "INSERT INTO index_settings (model_id, dimensions) VALUES (%s, 384)", (engine.embedder.model_id,)
        )
        connection.execute(
            "INSERT INTO documents (source, sequencer, metadata) VALUES ('s3://old/v.html', '1', %s)",
            (json.dumps({"content_type": "text/html"}),),
        )
        connection.execute(
            "INSERT INTO chunks (id, source, sequencer, chunk_index, text, embedding)"
            " VALUES ('x', 's3://old/v.html', '1', 0, 'Volcanoes erupt when magma rises.', %s::vector)",
            (str(vector.tolist()),),
        )
    store = ChunkStore(scratch_database, model_id=engine.embedder.model_id, dimensions=384)
    [hit] = store.keyword_chunks("volcano", limit=5, filters=SearchFilters(content_types=("text/html",)))
    store.close()
    assert (hit.source, hit.content_type) == ("s3://old/v.html", "text/html")
    # Started again (another container), nothing more is done and the settings agree.
    again = ChunkStore(scratch_database, model_id=engine.embedder.model_id, dimensions=384)
    again.connect()
    again.close()


def test_the_text_search_configuration_is_fixed_with_the_schema(engine: Any, scratch_database: str) -> None:
    model, dimensions = engine.embedder.model_id, engine.embedder.dimensions
    first = ChunkStore(scratch_database, model_id=model, dimensions=dimensions, text_search_config="simple")
    first.connect()
    first.close()
    with pytest.raises(StoreMismatchError, match="TEXT_SEARCH_CONFIG=simple"):
        ChunkStore(scratch_database, model_id=model, dimensions=dimensions).connect()


def test_an_unknown_text_search_configuration_names_those_there_are(
    engine: Any, scratch_database: str
) -> None:
    store = ChunkStore(scratch_database, model_id="m", dimensions=384, text_search_config="klingon")
    with pytest.raises(SettingsError, match=r"'klingon' is not .* it has: .*english"):
        store.connect()
