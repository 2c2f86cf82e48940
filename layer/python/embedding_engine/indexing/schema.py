"""The document store's schema: created idempotently at first use, upgraded in place, guarded against
mixing models or text-search languages."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from embedding_engine.errors import SettingsError, StoreMismatchError

SCHEMA_LOCK = 4_242_001  # advisory lock id: one schema migration at a time across containers
SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS index_settings (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    model_id text NOT NULL,
    dimensions integer NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    source text PRIMARY KEY,
    sequencer text NOT NULL,
    version text,
    deleted boolean NOT NULL DEFAULT false,
    chunk_count integer NOT NULL DEFAULT 0,
    metadata jsonb NOT NULL DEFAULT '{{}}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS chunks (
    id text PRIMARY KEY,
    source text NOT NULL REFERENCES documents (source) ON DELETE CASCADE,
    version text,
    sequencer text NOT NULL,
    chunk_index integer NOT NULL,
    text text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{{}}',
    embedding vector({dimensions}) NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, chunk_index)
);
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops);
"""
# Added after the first release: a database made before gets them at its next start (the chunks
# table is rewritten once, to compute `tsv`), with `content_type` copied from each document's row.
KEYWORD_COLUMNS = """
ALTER TABLE index_settings ADD COLUMN IF NOT EXISTS text_search_config text;
UPDATE index_settings SET text_search_config = {config} WHERE text_search_config IS NULL;
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS content_type text;
UPDATE chunks SET content_type = documents.metadata ->> 'content_type' FROM documents
    WHERE documents.source = chunks.source AND chunks.content_type IS NULL;
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS tsv tsvector
    GENERATED ALWAYS AS (to_tsvector({config}::regconfig, text)) STORED;
CREATE INDEX IF NOT EXISTS chunks_tsv_gin ON chunks USING gin (tsv);
"""


def ensure_schema(
    connection: psycopg.Connection[Any], *, model_id: str, dimensions: int, text_search_config: str
) -> None:
    """Create or upgrade the schema if needed (one container at a time), then refuse a database whose
    vectors come from another model or dimension, or whose keyword index uses another language."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        _run_script(connection, sql.SQL(SCHEMA.format(dimensions=dimensions)))
        connection.execute(
            "INSERT INTO index_settings (model_id, dimensions) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (model_id, dimensions),
        )
        if not _has_column(connection, "chunks", "tsv"):
            _check_text_search_config(connection, text_search_config)
            _run_script(connection, sql.SQL(KEYWORD_COLUMNS).format(config=sql.Literal(text_search_config)))
        row = connection.execute(
            "SELECT s.model_id, s.dimensions, a.atttypmod, s.text_search_config"
            " FROM index_settings s, pg_attribute a"
            " WHERE a.attrelid = 'chunks'::regclass AND a.attname = 'embedding'"
        ).fetchone()
    if row is None:
        raise StoreMismatchError("The database has no `chunks.embedding` column after creating the schema.")
    stored_model, stored_dimensions, column_dimensions, stored_config = row
    if (stored_model, stored_dimensions, column_dimensions) != (model_id, dimensions, dimensions):
        raise StoreMismatchError(
            f"The database's chunks were indexed with {stored_model} ({column_dimensions} dimensions); "
            f"this function serves {model_id} ({dimensions}). Point DATABASE_URL at a "
            "database for this model, or re-index into an empty one: vectors of different models "
            "must never be mixed."
        )
    if stored_config != text_search_config:
        raise StoreMismatchError(
            f"The database's keyword index uses the text search configuration {stored_config!r}; "
            f"TEXT_SEARCH_CONFIG is {text_search_config!r}. Set TEXT_SEARCH_CONFIG={stored_config}, "
            "or re-index into an empty database: keyword search must stem queries as it stemmed chunks."
        )


def _run_script(connection: psycopg.Connection[Any], script: sql.Composable) -> None:
    for statement in script.as_string(connection).split(";"):
        if statement.strip():
            connection.execute(statement.encode())


def _has_column(connection: psycopg.Connection[Any], table: str, column: str) -> bool:
    found = connection.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s AND NOT attisdropped",
        (table, column),
    ).fetchone()
    return found is not None


def _check_text_search_config(connection: psycopg.Connection[Any], config: str) -> None:
    """Fail with the configurations PostgreSQL has, rather than with its own error mid-migration."""
    available = [row[0] for row in connection.execute("SELECT cfgname FROM pg_ts_config ORDER BY 1")]
    if config not in available:
        raise SettingsError(
            f"TEXT_SEARCH_CONFIG={config!r} is not a text search configuration of this PostgreSQL; "
            f"it has: {', '.join(available)}."
        )
