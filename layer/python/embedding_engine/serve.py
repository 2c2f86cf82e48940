"""`python -m embedding_engine serve` (what `make run` runs): the ASGI app Lambda serves, on uvicorn.

Unlike a Lambda container, a local server takes requests concurrently: the model works on one
dedicated thread (the model is not thread-safe, and the CPU has no core to spare), warmed there at
start-up, so that the event loop keeps answering /health while a big request computes. Development
only: the image leaves this module out (see the Dockerfile)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from embedding_engine.api.app import create_app
from embedding_engine.engine import Engine
from embedding_engine.model_loader import warm_up


def start_model_thread(engine: Engine) -> ThreadPoolExecutor:
    """One worker thread for all model work, warmed before it takes a request: torch binds its
    thread pool to the thread that runs it, and the first pass on a new thread is slow."""
    model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    model_thread.submit(warm_up, engine.embedder.model).result()
    return model_thread


def serve(engine: Engine, *, host: str, port: int) -> int:
    """Serve the app around a started engine until interrupted."""
    import uvicorn

    model_thread = start_model_thread(engine)
    app = create_app(engine, model_thread=model_thread)
    engine.finish_init()
    try:
        uvicorn.run(app, host=host, port=port)
    finally:
        model_thread.shutdown(wait=False, cancel_futures=True)
    return 0
