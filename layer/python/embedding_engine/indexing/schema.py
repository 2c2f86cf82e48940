"""The document store's schema: one PostgreSQL schema per model (its index), created idempotently at
first use, upgraded in place, guarded against mixing models or text-search languages.

Each model id has its own index, so a new model is indexed beside the one being served and search
switches when the API function's model does (README: Changing the model); an index is only ever
dropped by `python -m embedding_engine drop-index`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.conninfo
from psycopg import sql

from embedding_engine.errors import SettingsError, StoreMismatchError

SCHEMA_LOCK = 4_242_001  # advisory lock id: one schema migration at a time across containers
INDEX_TABLES = ("index_settings", "documents", "chunks")
SCHEMA = """
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
    """Point the connection at the model's index (`index_schema`), creating or upgrading it if needed
    (one container at a time), then refuse an index whose vectors come from another model or
    dimension, or whose keyword index uses another language."""
    schema = index_schema(model_id)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        _adopt_unnamed_index(connection, schema, model_id)
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        use_index(connection, schema)
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
            f"The index {schema} was built with {stored_model} ({column_dimensions} dimensions); this "
            f"function serves {model_id} ({dimensions}). Give this model its own MODEL_ID (each model "
            f"id has its own index), or drop that index (`python -m embedding_engine drop-index {schema}`)"
            " and re-index: vectors of different models must never be mixed."
        )
    if stored_config != text_search_config:
        raise StoreMismatchError(
            f"The index {schema}'s keyword search uses the text search configuration {stored_config!r}; "
            f"TEXT_SEARCH_CONFIG is {text_search_config!r}. Set TEXT_SEARCH_CONFIG={stored_config}, "
            f"or drop the index (`python -m embedding_engine drop-index {schema}`) and re-index: "
            "keyword search must stem queries as it stemmed chunks."
        )


def index_schema(model_id: str) -> str:
    """The PostgreSQL schema of `model_id`'s index: the model's name made readable, and a digest of
    the whole id, so that no two ids share one (at most 55 characters; PostgreSQL allows 63)."""
    name = re.sub(r"[^a-z0-9]+", "_", model_id.rsplit("/", 1)[-1].lower()).strip("_")[:40] or "model"
    return f"index_{name}_{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"


def index_url(url: str, model_id: str) -> str:
    """`url` (a postgresql:// URL or key=value string) whose connections find `model_id`'s index
    tables (chunks, documents) by their bare names, as the store's own connections do."""
    option = f"-csearch_path={index_schema(model_id)},public"
    if not url.startswith(("postgres://", "postgresql://")):
        return psycopg.conninfo.make_conninfo(url, options=option)
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "options"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("options", option)])))


def use_index(connection: psycopg.Connection[Any], schema: str) -> None:
    """Resolve the index's tables in `schema` (and pgvector's types where the extension lives), and
    name the session after it, so that `drop-index` sees who is using it (pg_stat_activity)."""
    [extension_schema] = connection.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'vector'"
    ).fetchone() or ("public",)
    path = sql.SQL(", ").join(sql.Identifier(name) for name in dict.fromkeys((schema, extension_schema)))
    connection.execute(sql.SQL("SET search_path TO {}").format(path))
    connection.execute(sql.SQL("SET application_name TO {}").format(sql.Literal(schema)))


def _adopt_unnamed_index(connection: psycopg.Connection[Any], schema: str, model_id: str) -> None:
    """A database made before each model had its own schema keeps its index in `public`: when it holds
    this model's vectors and this model has no schema yet, its tables move there (instantly: a move,
    not a copy). An index of another model stays where it is, for `drop-index`."""
    exists = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if exists or connection.execute("SELECT to_regclass('public.index_settings')").fetchone() == (None,):
        return
    row = connection.execute("SELECT model_id FROM public.index_settings").fetchone()
    if row is None or row[0] != model_id:
        return
    connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for table in INDEX_TABLES:
        connection.execute(
            sql.SQL("ALTER TABLE public.{} SET SCHEMA {}").format(
                sql.Identifier(table), sql.Identifier(schema)
            )
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
