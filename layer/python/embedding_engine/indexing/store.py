"""The document store: chunks and their vectors in PostgreSQL + pgvector, through psycopg 3.

Exactly-once effect on at-least-once events: each document row remembers the S3 `sequencer` of the
last event applied to it, and a document's chunks are replaced, or deleted, in one transaction under
a per-document advisory lock, only when the incoming event is newer. Re-deliveries, re-uploads and
out-of-order events therefore never duplicate rows nor resurrect a deleted document.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from embedding_engine.errors import StoreUnavailableError
from embedding_engine.indexing.connect import UrlProvider, connect
from embedding_engine.indexing.schema import ensure_schema
from embedding_engine.indexing.search_sql import (
    ChunkHit,
    Corpus,
    SearchFilters,
    corpus,
    keyword_chunks,
    nearest_chunks,
)
from embedding_engine.observability import logger

T = TypeVar("T")
SEQUENCER_WIDTH = 64
# How long keyword search trusts its count of chunks and their average length (BM25's corpus
# figures, a full scan to take): a few minutes of other containers' indexing barely moves them.
CORPUS_MAX_AGE_SECONDS = 300.0


def normalize_sequencer(sequencer: str) -> str:
    """S3 sequencers are hex strings of varying length: left-pad them so text order is numeric order."""
    value = sequencer.strip().lower()
    if not value or any(char not in "0123456789abcdef" for char in value):
        raise ValueError(f"not a hexadecimal sequencer: {sequencer!r}")
    return value.rjust(SEQUENCER_WIDTH, "0")


@dataclass(frozen=True)
class StoredChunk:
    index: int
    text: str
    embedding: np.ndarray[Any, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


class ChunkStore:
    """One connection per container, opened at init when configured, reopened after a failure. `url`
    is fixed, or a `UrlProvider` (a secret's, which may rotate): a connection refused for its credentials
    is tried once more with the provider's credentials read again."""

    def __init__(
        self,
        url: str | UrlProvider,
        *,
        model_id: str,
        dimensions: int,
        text_search_config: str = "english",
        connect_timeout: int = 5,
    ) -> None:
        self._url = url
        self.model_id = model_id
        self.dimensions = dimensions
        self.text_search_config = text_search_config  # TEXT_SEARCH_CONFIG: how keyword search stems
        self._connect_timeout = connect_timeout
        self._connection: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._corpus: tuple[float, Corpus] | None = None  # when taken, and what

    def connect(self) -> None:
        """Open the connection and create or check the schema (raises `StoreUnavailableError`)."""
        self._run(lambda connection: None)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def has_applied(self, source: str, sequencer: str) -> bool:
        """True when this event, or a later one, was already applied to `source` (a cheap pre-check;
        the writes check again under the document's lock)."""
        sequencer = normalize_sequencer(sequencer)

        def query(connection: psycopg.Connection[Any]) -> bool:
            row = connection.execute(
                "SELECT sequencer FROM documents WHERE source = %s", (source,)
            ).fetchone()
            return row is not None and str(row[0]) >= sequencer

        return self._run(query)

    def replace_document(
        self,
        source: str,
        *,
        sequencer: str,
        version: str | None,
        chunks: Sequence[StoredChunk],
        metadata: dict[str, Any],
    ) -> bool:
        """Replace the document's chunks in one transaction; False if a newer event was applied."""
        sequencer = normalize_sequencer(sequencer)

        def write(connection: psycopg.Connection[Any]) -> bool:
            with connection.transaction():
                if not _claim(connection, source, sequencer):
                    return False
                _upsert_document(connection, source, sequencer, version, False, len(chunks), metadata)
                connection.execute("DELETE FROM chunks WHERE source = %s", (source,))
                with connection.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO chunks (id, source, version, sequencer, chunk_index, text, metadata,"
                        " embedding, content_type) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [
                            (
                                chunk_id(source, c.index),
                                source,
                                version,
                                sequencer,
                                c.index,
                                c.text,
                                Jsonb(c.metadata),
                                c.embedding,
                                metadata.get("content_type"),
                            )
                            for c in chunks
                        ],
                    )
                return True

        return self._written(self._run(write))

    def delete_document(self, source: str, *, sequencer: str) -> bool:
        """Remove the document's chunks and leave a tombstone; False if a newer event was applied."""
        sequencer = normalize_sequencer(sequencer)

        def write(connection: psycopg.Connection[Any]) -> bool:
            with connection.transaction():
                if not _claim(connection, source, sequencer):
                    return False
                _upsert_document(connection, source, sequencer, None, True, 0, {})
                connection.execute("DELETE FROM chunks WHERE source = %s", (source,))
                return True

        return self._written(self._run(write))

    def withdraw_document(self, source: str, *, sequencer: str) -> bool:
        """Remove the chunks of a document whose newer version (`sequencer`) cannot be read, without
        recording that event: the older text must not be served, and the event stays retryable (it
        ends in the dead-letter queue). False if `sequencer` was already applied or overtaken."""
        sequencer = normalize_sequencer(sequencer)

        def write(connection: psycopg.Connection[Any]) -> bool:
            with connection.transaction():
                if not _claim(connection, source, sequencer):
                    return False
                connection.execute(
                    "UPDATE documents SET deleted = true, chunk_count = 0, updated_at = now()"
                    " WHERE source = %s",
                    (source,),
                )
                connection.execute("DELETE FROM chunks WHERE source = %s", (source,))
                return True

        return self._written(self._run(write))

    def nearest_chunks(
        self, vector: np.ndarray[Any, Any], *, limit: int, filters: SearchFilters
    ) -> list[ChunkHit]:
        """The `limit` chunks nearest to `vector` that pass `filters`, best first."""
        return self._run(lambda connection: nearest_chunks(connection, vector, limit=limit, filters=filters))

    def keyword_chunks(self, query: str, *, limit: int, filters: SearchFilters) -> list[ChunkHit]:
        """The `limit` chunks that pass `filters` with the best BM25 score for `query`, best first."""

        def read(connection: psycopg.Connection[Any]) -> list[ChunkHit]:
            taken = self._corpus
            if taken is None or time.monotonic() - taken[0] > CORPUS_MAX_AGE_SECONDS:
                taken = self._corpus = (time.monotonic(), corpus(connection))
            config = self.text_search_config
            return keyword_chunks(
                connection, query, config=config, corpus=taken[1], limit=limit, filters=filters
            )

        return self._run(read)

    def _written(self, applied: bool) -> bool:
        """After a write: this container's next keyword search counts the corpus again."""
        if applied:
            self._corpus = None
        return applied

    def _run(self, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `operation`, reconnecting once: a connection idle across a Lambda freeze may be dead.
        Every operation is one idempotent transaction, so running it again is safe."""
        with self._lock:
            try:
                return operation(self._open())
            except psycopg.OperationalError:
                self.close()
                logger.warning("document store connection failed; reconnecting")
            try:
                return operation(self._open())
            except psycopg.OperationalError as exc:
                self.close()
                raise StoreUnavailableError(
                    "The document store is unavailable; the operation can be retried."
                ) from exc

    def _open(self) -> psycopg.Connection[Any]:
        if self._connection is not None and not self._connection.closed and not self._connection.broken:
            return self._connection
        from pgvector.psycopg import register_vector

        connection = connect(self._url, timeout=self._connect_timeout)
        try:
            ensure_schema(
                connection,
                model_id=self.model_id,
                dimensions=self.dimensions,
                text_search_config=self.text_search_config,
            )
            register_vector(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection


def chunk_id(source: str, index: int) -> str:
    """Stable: the same document position always has the same id."""
    import hashlib

    return hashlib.sha256(f"{source}\x00{index}".encode()).hexdigest()[:32]


def _claim(connection: psycopg.Connection[Any], source: str, sequencer: str) -> bool:
    """Lock the document for this transaction; True when `sequencer` is newer than what was applied."""
    connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (source,))
    row = connection.execute("SELECT sequencer FROM documents WHERE source = %s", (source,)).fetchone()
    return row is None or str(row[0]) < sequencer


def _upsert_document(
    connection: psycopg.Connection[Any],
    source: str,
    sequencer: str,
    version: str | None,
    deleted: bool,
    chunk_count: int,
    metadata: dict[str, Any],
) -> None:
    connection.execute(
        "INSERT INTO documents (source, sequencer, version, deleted, chunk_count, metadata, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (source) DO UPDATE SET"
        " sequencer = EXCLUDED.sequencer, version = EXCLUDED.version, deleted = EXCLUDED.deleted,"
        " chunk_count = EXCLUDED.chunk_count, metadata = EXCLUDED.metadata, updated_at = now()",
        (source, sequencer, version, deleted, chunk_count, Jsonb(metadata)),
    )
