"""A database's indexes, one PostgreSQL schema per model: listed, and dropped only when asked
(`python -m embedding_engine indexes`, `drop-index`). Nothing here ever runs on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from embedding_engine.errors import IndexNotDroppedError
from embedding_engine.indexing.schema import SCHEMA_LOCK


@dataclass(frozen=True)
class IndexInfo:
    schema: str
    model_id: str
    dimensions: int
    documents: int  # not deleted
    chunks: int
    bytes: int  # tables and their indexes
    sessions: int  # connections using it now (each names itself after its index)


def list_indexes(connection: psycopg.Connection[Any]) -> list[IndexInfo]:
    """Every schema holding an index (`public` too, for a database made before indexes had a schema
    each), by name."""
    schemas = connection.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = 'index_settings' AND c.relkind = 'r' ORDER BY 1"
    ).fetchall()
    return [_describe(connection, schema) for (schema,) in schemas]


def drop_index(connection: psycopg.Connection[Any], schema: str, *, force: bool = False) -> IndexInfo:
    """Drop the index in `schema`, with its documents and chunks, and say what it was. Refuses an
    unknown name, and an index that a connection is using unless `force`."""
    found = {index.schema: index for index in list_indexes(connection)}
    if schema not in found:
        known = ", ".join(found) or "none"
        raise IndexNotDroppedError(f"No index named {schema!r} in this database (its indexes: {known}).")
    index = found[schema]
    if index.sessions and not force:
        raise IndexNotDroppedError(
            f"{schema} ({index.model_id}) is in use by {index.sessions} connection(s): a function still "
            "serves or indexes this model. Switch it to the new model first, or pass --force."
        )
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        if schema == "public":  # an index made before each had its own schema: only its tables go
            tables = sql.SQL(", ").join(sql.Identifier("public", table) for table in _TABLES)
            connection.execute(sql.SQL("DROP TABLE {}").format(tables))
        else:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return index


_TABLES = ("chunks", "documents", "index_settings")


def _describe(connection: psycopg.Connection[Any], schema: str) -> IndexInfo:
    def table(name: str) -> sql.Composable:
        return sql.Identifier(schema, name)

    model_id, dimensions = connection.execute(
        sql.SQL("SELECT model_id, dimensions FROM {}").format(table("index_settings"))
    ).fetchone() or ("?", 0)
    [documents] = connection.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE NOT deleted").format(table("documents"))
    ).fetchone() or (0,)
    [chunks] = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table("chunks"))).fetchone() or (
        0,
    )
    [size] = connection.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (schema, list(_TABLES)),
    ).fetchone() or (0,)
    [sessions] = connection.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
        (schema,),
    ).fetchone() or (0,)
    return IndexInfo(
        schema, str(model_id), int(dimensions), int(documents), int(chunks), int(size), int(sessions)
    )
