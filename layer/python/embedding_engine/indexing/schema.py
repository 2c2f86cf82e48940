"""The document store's schema: created idempotently at first use, guarded against mixing models."""

from __future__ import annotations

from typing import Any

import psycopg

from embedding_engine.errors import StoreMismatchError

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


def ensure_schema(connection: psycopg.Connection[Any], *, model_id: str, dimensions: int) -> None:
    """Create the schema if needed (one container at a time), then refuse a database whose vectors
    come from another model or dimension."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in SCHEMA.format(dimensions=dimensions).split(";"):
            if statement.strip():
                connection.execute(statement.encode())
        connection.execute(
            "INSERT INTO index_settings (model_id, dimensions) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (model_id, dimensions),
        )
        row = connection.execute(
            "SELECT s.model_id, s.dimensions, a.atttypmod FROM index_settings s, pg_attribute a"
            " WHERE a.attrelid = 'chunks'::regclass AND a.attname = 'embedding'"
        ).fetchone()
    if row is None:
        raise StoreMismatchError("The database has no `chunks.embedding` column after creating the schema.")
    stored_model, stored_dimensions, column_dimensions = row
    if (stored_model, stored_dimensions, column_dimensions) != (model_id, dimensions, dimensions):
        raise StoreMismatchError(
            f"The database's chunks were indexed with {stored_model} ({column_dimensions} dimensions); "
            f"this function serves {model_id} ({dimensions}). Point DATABASE_URL at a "
            "database for this model, or re-index into an empty one: vectors of different models "
            "must never be mixed."
        )
