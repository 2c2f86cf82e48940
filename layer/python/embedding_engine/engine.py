"""The warm engine a container holds for its whole life: settings, model, and how it started."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from embedding_engine.clock import elapsed_ms
from embedding_engine.container import ContainerState
from embedding_engine.embedder import Embedder
from embedding_engine.errors import StoreUnavailableError
from embedding_engine.health import publish_init
from embedding_engine.limits import default_max_total_tokens
from embedding_engine.model_loader import WARMUP_TEXTS, LoadReport, load_model, load_onnx
from embedding_engine.observability import logger
from embedding_engine.settings import Settings

if TYPE_CHECKING:  # the indexing modules (psycopg, pypdf...) load only when a store is configured
    from embedding_engine.indexing.connect import UrlProvider
    from embedding_engine.indexing.pipeline import Indexer
    from embedding_engine.indexing.store import ChunkStore


@dataclass
class Engine:
    settings: Settings
    embedder: Embedder
    load_report: LoadReport
    state: ContainerState
    # Tokens one request may carry: MAX_TOTAL_TOKENS, or what the model encodes in time (limits.py).
    max_total_tokens: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    indexer: Indexer | None = None

    @classmethod
    def start(cls, settings: Settings, *, init_started: float) -> Engine:
        """Load, verify and warm the model, and connect the document store when one is configured.
        `init_started` is `time.perf_counter()` at the very start of init, so that the module imports
        before this call count in the `imports` phase."""
        before_load = time.perf_counter()
        if settings.backend == "onnx":
            loaded = load_onnx(settings.model_source, threads=settings.torch_threads)
        else:
            loaded = load_model(
                settings.model_source, threads=settings.torch_threads, defer_imports=settings.defer_imports
            )
        report = loaded.report
        timings = dict(report.timings_ms)
        timings["imports"] = round(timings["imports"] + elapsed_ms(init_started, before_load), 1)
        embedder = Embedder(loaded.model, model_id=settings.model_id, batch_size=settings.encode_batch_size)
        before_throughput = time.perf_counter()
        # A batch of passages of the length real requests carry, timed once the model is warm.
        tokens_per_second = embedder.measure_throughput([WARMUP_TEXTS[-1]] * 2)
        timings["throughput"] = elapsed_ms(before_throughput)
        max_total_tokens = settings.max_total_tokens or default_max_total_tokens(
            tokens_per_second, settings.request_timeout_seconds
        )
        indexer = None
        if settings.store_configured:
            from embedding_engine.indexing.fetch import S3Fetcher
            from embedding_engine.indexing.pipeline import Indexer

            before_store = time.perf_counter()
            store = open_store(settings, embedder)
            fetcher = S3Fetcher(max_bytes=settings.max_document_bytes)
            indexer = Indexer(
                embedder,
                store,
                fetcher=fetcher,
                overlap_tokens=settings.chunk_overlap_tokens,
                max_chars=settings.max_document_chars,
                max_chunks=settings.max_document_chunks,
            )
            timings["store"] = elapsed_ms(before_store)
        timings["total"] = elapsed_ms(init_started)
        state = ContainerState(init_started=init_started, initialization_type=settings.initialization_type)
        return cls(
            settings=settings,
            embedder=embedder,
            load_report=report,
            state=state,
            max_total_tokens=max_total_tokens,
            timings_ms=timings,
            indexer=indexer,
        )

    @property
    def store(self) -> ChunkStore | None:
        """The document store, when one is configured (the indexer writes to it, search reads it)."""
        return self.indexer.store if self.indexer is not None else None

    def finish_init(self, **steps: Callable[[], object]) -> None:
        """Run the last init steps, each timed as a phase of its own, then log and publish the init
        figures (as their own EMF document: init has no invocation to flush them)."""
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            self.timings_ms[name] = elapsed_ms(started)
        self.timings_ms["total"] = elapsed_ms(self.state.init_started)
        publish_init(self.timings_ms, self.load_report.strategy)


def open_store(settings: Settings, embedder: Embedder) -> ChunkStore:
    """The document store, connected during init (pre-warmed) when the database answers; if it does
    not, init goes on and the store reconnects on first use. A schema built for another model fails
    init: vectors of different models must never be mixed. With DATABASE_SECRET_ARN, the secret is read
    now (a missing or unusable one fails init), then again as it ages or when the password is refused."""
    from embedding_engine.indexing.store import ChunkStore

    store = ChunkStore(
        store_url(settings),
        model_id=embedder.model_id,
        dimensions=embedder.dimensions,
        text_search_config=settings.text_search_config,
    )
    try:
        store.connect()
    except StoreUnavailableError:
        logger.warning("document store unreachable during init; it will reconnect on first use")
    return store


def store_url(settings: Settings) -> str | UrlProvider:
    """DATABASE_URL, or DATABASE_SECRET_ARN's URL, read now (a missing or unusable secret fails here)
    and kept current as the secret rotates."""
    from embedding_engine.secrets import database_secret_url

    if settings.database_url:
        return settings.database_url
    return database_secret_url(str(settings.database_secret_arn), max_age=settings.secrets_max_age_seconds)
