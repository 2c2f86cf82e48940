"""The warm engine a container holds for its whole life: settings, model, and how it started."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from embedding_engine.clock import elapsed_ms
from embedding_engine.embedder import Embedder
from embedding_engine.errors import StoreUnavailableError
from embedding_engine.limits import default_max_total_tokens
from embedding_engine.memory import allocator, resident_mb
from embedding_engine.model_loader import WARMUP_TEXTS, LoadReport, load_model
from embedding_engine.observability import METRICS_NAMESPACE, SERVICE_NAME, logger
from embedding_engine.settings import Settings

if TYPE_CHECKING:  # the indexing modules (psycopg, pypdf...) load only when a store is configured
    from embedding_engine.indexing.pipeline import Indexer
    from embedding_engine.indexing.store import ChunkStore


@dataclass
class ContainerState:
    """What this container knows about its own life: when init began and how many calls it took."""

    init_started: float
    initialization_type: str | None
    invocations: int = 0
    # Tells containers apart in warm-up replies (Lambda exposes no container id).
    container_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def init_cold_start(self) -> bool:
        """True when this container was started for a waiting request (Lambda's on-demand init),
        not ahead of time (provisioned concurrency, SnapStart)."""
        return self.initialization_type in (None, "on-demand")

    @property
    def cold_start(self) -> bool:
        """True for the invocation that waited for init: the first one after an on-demand init."""
        return self.invocations == 1 and self.init_cold_start

    @property
    def uptime_seconds(self) -> float:
        return round(time.perf_counter() - self.init_started, 3)

    def record_invocation(self) -> None:
        self.invocations += 1


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
        loaded = load_model(settings.model_source, threads=settings.torch_threads)
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
        _publish_init_metrics(self.timings_ms, self.load_report.strategy)

    def health(self) -> dict[str, Any]:
        """What `/health` shows: the model, how it was loaded, and this container's state."""
        report = self.load_report
        return {
            "status": "ok",
            "model": self.embedder.model_id,
            "dimensions": self.embedder.dimensions,
            "max_sequence_length": self.embedder.max_seq_length,
            "torch_threads": self.settings.torch_threads,
            "max_total_tokens": self.max_total_tokens,
            "tokens_per_second": round(self.embedder.throughput.tokens_per_second),
            "request_timeout_seconds": self.settings.request_timeout_seconds,
            "load_strategy": report.strategy,
            "failed_strategies": [
                {"strategy": attempt.strategy, "error": attempt.error} for attempt in report.failed_attempts
            ],
            "timings_ms": self.timings_ms,
            "init_cold_start": self.state.init_cold_start,
            "initialization_type": self.state.initialization_type,
            "uptime_seconds": self.state.uptime_seconds,
            "invocations": self.state.invocations,
            "document_store": "configured" if self.store is not None else "not configured",
            "memory": {"allocator": allocator(), **resident_mb()},
        }


def open_store(settings: Settings, embedder: Embedder) -> ChunkStore:
    """The document store, connected during init (pre-warmed) when the database answers; if it does
    not, init goes on and the store reconnects on first use. A schema built for another model fails
    init: vectors of different models must never be mixed."""
    from embedding_engine.indexing.store import ChunkStore
    from embedding_engine.secrets import database_url_from_secret, read_secret

    url = settings.database_url or database_url_from_secret(read_secret(str(settings.database_secret_arn)))
    store = ChunkStore(url, model_id=embedder.model_id, dimensions=embedder.dimensions)
    try:
        store.connect()
    except StoreUnavailableError:
        logger.warning("document store unreachable during init; it will reconnect on first use")
    return store


def _publish_init_metrics(timings: dict[str, float], strategy: str) -> None:
    memory = {"allocator": allocator(), **resident_mb()}
    logger.info("init complete", extra={"timings_ms": timings, "load_strategy": strategy, "memory": memory})
    init_metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
    init_metrics.add_dimension(name="load_strategy", value=strategy)
    init_metrics.add_metric(name="ModelLoadMs", unit=MetricUnit.Milliseconds, value=timings["load"])
    init_metrics.add_metric(name="WarmupMs", unit=MetricUnit.Milliseconds, value=timings["warmup"])
    init_metrics.add_metric(name="InitMs", unit=MetricUnit.Milliseconds, value=timings["total"])
    init_metrics.flush_metrics()
