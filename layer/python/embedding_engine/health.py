"""What a container tells about itself: `/health`, and the init figures it logs and publishes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from embedding_engine.memory import allocator, resident_mb
from embedding_engine.observability import METRICS_NAMESPACE, SERVICE_NAME, logger

if TYPE_CHECKING:
    from embedding_engine.engine import Engine


def health_report(engine: Engine) -> dict[str, Any]:
    """What `/health` shows: the model, how it was loaded, and this container's state."""
    report = engine.load_report
    return {
        "status": "ok",
        "model": engine.embedder.model_id,
        "backend": engine.settings.backend,
        "dimensions": engine.embedder.dimensions,
        "max_sequence_length": engine.embedder.max_seq_length,
        "torch_threads": engine.settings.torch_threads,
        "max_total_tokens": engine.max_total_tokens,
        "tokens_per_second": round(engine.embedder.throughput.tokens_per_second),
        "request_timeout_seconds": engine.settings.request_timeout_seconds,
        "load_strategy": report.strategy,
        "failed_strategies": [
            {"strategy": attempt.strategy, "error": attempt.error} for attempt in report.failed_attempts
        ],
        "timings_ms": engine.timings_ms,
        "init_cold_start": engine.state.init_cold_start,
        "initialization_type": engine.state.initialization_type,
        "uptime_seconds": engine.state.uptime_seconds,
        "invocations": engine.state.invocations,
        "document_store": "configured" if engine.store is not None else "not configured",
        "memory": {"allocator": allocator(), **resident_mb()},
    }


def metrics_function_name() -> str:
    """The `function_name` dimension, resolved as Powertools resolves it for its ColdStart metric
    (its variable, then the function's name; the context Powertools reads carries the same name), so
    that a dashboard tells the API's containers from the indexer's. `local` outside Lambda."""
    return (
        os.environ.get("POWERTOOLS_METRICS_FUNCTION_NAME")
        or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        or "local"
    )


def publish_init(timings: dict[str, float], strategy: str) -> None:
    """Log the init figures and publish them as their own EMF document (init has no invocation
    to flush them with), by function and load strategy."""
    memory = {"allocator": allocator(), **resident_mb()}
    logger.info("init complete", extra={"timings_ms": timings, "load_strategy": strategy, "memory": memory})
    init_metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
    init_metrics.add_dimension(name="function_name", value=metrics_function_name())
    init_metrics.add_dimension(name="load_strategy", value=strategy)
    init_metrics.add_metric(name="ModelLoadMs", unit=MetricUnit.Milliseconds, value=timings["load"])
    init_metrics.add_metric(name="WarmupMs", unit=MetricUnit.Milliseconds, value=timings["warmup"])
    init_metrics.add_metric(name="InitMs", unit=MetricUnit.Milliseconds, value=timings["total"])
    init_metrics.flush_metrics()
