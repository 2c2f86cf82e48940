"""One index per model, a PostgreSQL schema each, on the real database: a new model's index fills
beside the one being served, search follows the model, and an index goes only when `drop-index` is
asked, never while a function uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from embedding_engine.errors import IndexNotDroppedError
from embedding_engine.events.batch_operations import BatchOperationTasks
from embedding_engine.indexing.fetch import S3Fetcher
from embedding_engine.indexing.indexes import drop_index, list_indexes
from embedding_engine.indexing.pipeline import Indexer
from embedding_engine.indexing.schema import index_schema
from embedding_engine.indexing.search_sql import SearchFilters
from embedding_engine.indexing.store import ChunkStore, StoredChunk
from flow import MakeFlow, search
from helpers import FakeLambdaContext, load_event
from test_store import OLD_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
# The same vectors under another model id: what a model change changes here is the index.
NEXT_MODEL = "example/all-MiniLM-L6-v2-next"
OLD_TEXT = "Lighthouse keepers trimmed the lamp at dusk so that ships could see the rocks."
NEW_TEXT = "The harbour ferry leaves at seven each morning and returns before noon."


def indexed(url: str, engine: Any, model_id: str, documents: dict[str, str]) -> ChunkStore:
    """A store of `model_id` on `url` holding `documents` (source: text), one chunk each."""
    store = ChunkStore(url, model_id=model_id, dimensions=engine.embedder.dimensions)
    for source, text in documents.items():
        [vector] = engine.embedder.embed([text])
        chunk = StoredChunk(index=0, text=text, embedding=vector)
        store.replace_document(source, sequencer="1", version=None, chunks=[chunk], metadata={})
    return store


def found(store: ChunkStore, engine: Any, query: str) -> set[str]:
    """The sources vector and keyword search find for `query`."""
    [vector] = engine.embedder.embed([query])
    hits = store.nearest_chunks(vector, limit=10, filters=SearchFilters())
    hits += store.keyword_chunks(query, limit=10, filters=SearchFilters())
    return {hit.source for hit in hits}


def test_a_new_model_fills_its_own_index_while_search_reads_the_old_one(
    engine: Any, scratch_database: str
) -> None:
    served = indexed(scratch_database, engine, engine.embedder.model_id, {"s3://d/old.txt": OLD_TEXT})
    reindexing = indexed(
        scratch_database, engine, NEXT_MODEL, {"s3://d/old.txt": OLD_TEXT, "s3://d/new.txt": NEW_TEXT}
    )

    assert found(served, engine, "harbour ferry") == {"s3://d/old.txt"}  # untouched by the reindex
    switched = ChunkStore(scratch_database, model_id=NEXT_MODEL, dimensions=engine.embedder.dimensions)
    assert "s3://d/new.txt" in found(switched, engine, "harbour ferry")  # a container of the new model
    with psycopg.connect(scratch_database) as connection:
        indexes = {index.model_id: index for index in list_indexes(connection)}
    assert {model: (index.schema, index.documents, index.chunks) for model, index in indexes.items()} == {
        engine.embedder.model_id: (index_schema(engine.embedder.model_id), 1, 1),
        NEXT_MODEL: (index_schema(NEXT_MODEL), 2, 2),
    }
    assert indexes[NEXT_MODEL].sessions == 2 and indexes[NEXT_MODEL].bytes > 0  # reindexing and switched
    for store in (served, reindexing, switched):
        store.close()


def test_an_index_in_use_is_refused_and_dropping_another_leaves_it_whole(
    engine: Any, scratch_database: str
) -> None:
    served = indexed(scratch_database, engine, engine.embedder.model_id, {"s3://d/old.txt": OLD_TEXT})
    old = indexed(scratch_database, engine, NEXT_MODEL, {"s3://d/new.txt": NEW_TEXT})
    with psycopg.connect(scratch_database, autocommit=True) as admin:
        with pytest.raises(IndexNotDroppedError, match=r"in use by 1 connection"):
            drop_index(admin, index_schema(NEXT_MODEL))
        with pytest.raises(IndexNotDroppedError, match=r"No index named 'nope' .*index_all_minilm"):
            drop_index(admin, "nope")
        old.close()

        dropped = drop_index(admin, index_schema(NEXT_MODEL))

        assert (dropped.model_id, dropped.documents) == (NEXT_MODEL, 1)
        assert [index.schema for index in list_indexes(admin)] == [index_schema(engine.embedder.model_id)]
    assert found(served, engine, "lighthouse lamp") == {"s3://d/old.txt"}
    served.close()


def test_an_index_from_before_schemas_moves_to_its_model_and_another_model_s_stays(
    engine: Any, scratch_database: str
) -> None:
    """A first-release database keeps its index in `public`. A function of another model leaves it
    there (listed, droppable); a function of its own model moves it into its schema, rows and all."""
    [vector] = engine.embedder.embed([OLD_TEXT])
    with psycopg.connect(scratch_database, autocommit=True) as connection:
        for statement in OLD_SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement.encode())
        connection.execute(
            "INSERT INTO index_settings (model_id, dimensions) VALUES (%s, 384)", (NEXT_MODEL,)
        )
        connection.execute("INSERT INTO documents (source, sequencer) VALUES ('s3://d/old.txt', '1')")
        connection.execute(
            "INSERT INTO chunks (id, source, sequencer, chunk_index, text, embedding)"
            " VALUES ('x', 's3://d/old.txt', '1', 0, %s, %s::vector)",
            (OLD_TEXT, str(vector.tolist())),
        )
    other = indexed(scratch_database, engine, engine.embedder.model_id, {})
    other.connect()
    with psycopg.connect(scratch_database) as connection:
        assert [(i.schema, i.model_id) for i in list_indexes(connection)] == [
            (index_schema(engine.embedder.model_id), engine.embedder.model_id),
            ("public", NEXT_MODEL),
        ]

    own = ChunkStore(scratch_database, model_id=NEXT_MODEL, dimensions=384)

    assert found(own, engine, "lighthouse lamp") == {"s3://d/old.txt"}
    with psycopg.connect(scratch_database) as connection:
        assert [(i.schema, i.documents) for i in list_indexes(connection)] == [
            (index_schema(engine.embedder.model_id), 0),
            (index_schema(NEXT_MODEL), 1),
        ]
        assert connection.execute("SELECT to_regclass('public.chunks')").fetchone() == (None,)
    other.close()
    own.close()


def test_the_cli_lists_indexes_and_drops_one_only_when_confirmed(engine: Any, scratch_database: str) -> None:
    indexed(scratch_database, engine, engine.embedder.model_id, {"s3://d/old.txt": OLD_TEXT}).close()
    indexed(scratch_database, engine, NEXT_MODEL, {"s3://d/new.txt": NEW_TEXT}).close()
    env = {**os.environ, "DATABASE_URL": scratch_database, "HF_HUB_OFFLINE": "1"}

    def cli(*arguments: str, answer: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "embedding_engine", *arguments]
        return subprocess.run(
            command, cwd=ROOT, env=env, input=answer, capture_output=True, text=True, timeout=120
        )

    listed = cli("indexes")
    not_confirmed = cli("drop-index", index_schema(NEXT_MODEL), answer="yes\n")
    dropped = cli("drop-index", index_schema(NEXT_MODEL), answer=f"{index_schema(NEXT_MODEL)}\n")
    after = cli("indexes")

    lines = listed.stdout.splitlines()
    assert any(line.startswith(f"* {index_schema(engine.embedder.model_id)}") for line in lines), listed
    assert any(line.startswith(f"  {index_schema(NEXT_MODEL)}") and NEXT_MODEL in line for line in lines)
    assert (not_confirmed.returncode, not_confirmed.stderr.strip()) == (1, "Not dropped.")
    assert (
        dropped.returncode == 0
        and f"Dropped {index_schema(NEXT_MODEL)} ({NEXT_MODEL}: 1 documents" in dropped.stdout
    )
    assert (
        index_schema(NEXT_MODEL) not in after.stdout
        and index_schema(engine.embedder.model_id) in after.stdout
    )


def test_index_names_are_readable_unique_and_fit_postgresql() -> None:
    names = {index_schema(model) for model in ("a/MiniLM-L6", "b/MiniLM-L6", "x" * 300, "🙂")}
    assert len(names) == 4 and all(len(name) <= 63 and name.isascii() for name in names)
    assert index_schema("sentence-transformers/all-mpnet-base-v2").startswith("index_all_mpnet_base_v2_")


def test_a_reindex_job_fills_the_new_model_s_index_while_the_api_searches_the_old(
    make_flow: MakeFlow, engine: Any, client: TestClient, database_url: str
) -> None:
    """The indexing function of the next model takes a Batch Operations job over the bucket; the API
    function (the session's, of the served model) goes on answering from its own index."""
    flow = make_flow(events=())
    flow.upload("notes/ferry.txt", NEW_TEXT)
    store = ChunkStore(database_url, model_id=NEXT_MODEL, dimensions=engine.embedder.dimensions)
    overlap = engine.settings.chunk_overlap_tokens
    next_indexer = Indexer(engine.embedder, store, fetcher=S3Fetcher(max_bytes=10**6), overlap_tokens=overlap)
    event = load_event("s3_batch_operations_v2")
    event["tasks"][0].update(s3Bucket=flow.bucket, s3Key="notes/ferry.txt")
    try:
        [result] = BatchOperationTasks(next_indexer)(event, FakeLambdaContext(remaining_ms=300_000))[
            "results"
        ]

        assert result["resultCode"] == "Succeeded" and result["resultString"].startswith("indexed")
        assert found(store, engine, "harbour ferry") == {flow.source("notes/ferry.txt")}
        assert search(client, "harbour ferry") == []  # the served model's index holds nothing of it
    finally:
        store.close()
        with psycopg.connect(database_url, autocommit=True) as admin:
            drop_index(admin, index_schema(NEXT_MODEL))
