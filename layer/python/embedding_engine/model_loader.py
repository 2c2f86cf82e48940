"""Load the sentence-transformers model on the CPU, prove it is real, and recover from meta tensors.

PyTorch raises `NotImplementedError: Cannot copy out of meta tensor; no data!` when a model whose
weights were never materialised (they sit on the `meta` device) is moved to a real device. Worse, a
model can also come back from a loader with meta tensors and no error at all, or with the garbage
`to_empty()` leaves. So every strategy's result goes through `verify_model` (no meta tensor, a probe
that encodes to finite values of the right dimension), and a failed strategy is followed by a clean
reload from disk that first undoes a leaked `meta` default device. If none passes, init fails
loudly: a container that serves wrong vectors is worse than one that does not start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from embedding_engine.clock import elapsed_ms
from embedding_engine.deferred_imports import deferring
from embedding_engine.errors import ModelCheckError, ModelLoadError
from embedding_engine.observability import logger

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embedding_engine.onnx_model import OnnxModel

    Model = SentenceTransformer | OnnxModel

PROBE_TEXT = "Serverless embeddings: a probe sentence to prove the weights are real."
WARMUP_TEXTS = (
    "warm-up",
    "A short query about cold starts.",
    "A longer passage, closer to a document chunk, so that the warm-up forward pass touches the "
    "same kernels and buffer sizes as real requests do, and the first real request is not the one "
    "that pays for them. " * 3,
)

LoadStrategy = Callable[[str], "SentenceTransformer"]


@dataclass(frozen=True)
class FailedAttempt:
    strategy: str
    error: str


@dataclass(frozen=True)
class LoadReport:
    """How the model was loaded: the winning strategy, the ones that failed, and phase timings."""

    source: str
    strategy: str
    failed_attempts: tuple[FailedAttempt, ...]
    timings_ms: Mapping[str, float]


@dataclass(frozen=True)
class LoadedModel:
    model: Model
    report: LoadReport


def load_on_cpu(source: str) -> SentenceTransformer:
    """The normal path: local files only, explicitly on the CPU."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(source, device="cpu", local_files_only=True)


def reload_clean_on_cpu(source: str) -> SentenceTransformer:
    """Start clean: free what the failed attempt left, undo a leaked `meta` default device (the
    global switch that makes every new tensor a meta tensor), and read the weights from disk again."""
    import gc

    import torch
    from sentence_transformers import SentenceTransformer

    gc.collect()
    previous = torch.get_default_device()
    if previous.type != "cpu":
        logger.warning("torch default device reset", extra={"previous_device": str(previous)})
    torch.set_default_device(None)
    return SentenceTransformer(source, device="cpu", local_files_only=True)


DEFAULT_STRATEGIES: tuple[tuple[str, LoadStrategy], ...] = (
    ("cpu", load_on_cpu),
    ("clean-cpu-reload", reload_clean_on_cpu),
)
# What a meta-tensor problem looks like: torch's NotImplementedError, transformers' RuntimeError
# ("from_pretrained with a meta device..."), or a model that loads but fails its self-check.
RECOVERABLE_ERRORS = (NotImplementedError, RuntimeError, ModelCheckError)

_load_lock = threading.Lock()


def verify_model(model: SentenceTransformer) -> None:
    """Raise `ModelCheckError` unless every tensor is real and a probe encodes to a finite,
    non-zero vector of the model's dimension."""
    tensors = chain(model.named_parameters(), model.named_buffers())
    on_meta = [name for name, tensor in tensors if tensor.is_meta]
    if on_meta:
        raise ModelCheckError(f"{len(on_meta)} tensors on the meta device, first {on_meta[0]!r}")
    check_probe(model)


def check_probe(model: Model) -> None:
    """Raise `ModelCheckError` unless a probe encodes to a finite, non-zero vector of the model's
    dimension."""
    import numpy as np

    dimension = model.get_embedding_dimension()
    try:
        vector = model.encode([PROBE_TEXT], convert_to_numpy=True)
    except (RuntimeError, IndexError, ValueError) as exc:  # garbage weights fail in many ways
        raise ModelCheckError(f"probe encode failed: {_summarize(exc)}") from exc
    if vector.shape != (1, dimension):
        raise ModelCheckError(f"probe embedding has shape {vector.shape}, expected (1, {dimension})")
    if not np.isfinite(vector).all() or not np.any(vector):
        raise ModelCheckError("probe embedding is not finite or is all zeros")


def warm_up(model: Model) -> None:
    """Run forward passes of the shapes real requests use, so the first request is not slower."""
    model.encode(list(WARMUP_TEXTS), convert_to_numpy=True)
    model.encode([WARMUP_TEXTS[1]], convert_to_numpy=True)


def load_model(
    source: str,
    strategies: Sequence[tuple[str, LoadStrategy]] = DEFAULT_STRATEGIES,
    *,
    threads: int | None = None,
    defer_imports: bool = True,
) -> LoadedModel:
    """Load, verify and warm the model, trying `strategies` in order, with `threads` torch threads
    (torch's own default when None). With `defer_imports`, the libraries that embedding never runs
    are not imported (`deferred_imports`). Raises `ModelLoadError`."""
    with _load_lock, deferring() if defer_imports else nullcontext():
        started = time.perf_counter()
        import sentence_transformers  # noqa: F401  (timed: the import is a large share of init)
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no tqdm bars in CloudWatch
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        imported = time.perf_counter()
        failures: list[FailedAttempt] = []
        for name, strategy in strategies:
            try:
                model = strategy(source)
                verify_model(model)
            except RECOVERABLE_ERRORS as exc:
                failures.append(FailedAttempt(name, _summarize(exc)))
                logger.warning(
                    "model load strategy failed", extra={"strategy": name, "error": _summarize(exc)}
                )
                continue
            except (OSError, ValueError) as exc:
                raise ModelLoadError(
                    f"Cannot read a sentence-transformers model from {source!r}: {_summarize(exc)}. "
                    "Set MODEL_PATH to a folder saved with SentenceTransformer.save() "
                    "(the image bakes one in at build time)."
                ) from exc
            loaded = time.perf_counter()
            warm_up(model)
            warmed = time.perf_counter()
            report = LoadReport(
                source=source,
                strategy=name,
                failed_attempts=tuple(failures),
                timings_ms={
                    "imports": elapsed_ms(started, imported),
                    "load": elapsed_ms(imported, loaded),
                    "warmup": elapsed_ms(loaded, warmed),
                },
            )
            logger.info(
                "model ready",
                extra={"strategy": name, "fallback": bool(failures), "timings_ms": dict(report.timings_ms)},
            )
            return LoadedModel(model=model, report=report)
        tried = "; ".join(f"{failure.strategy}: {failure.error}" for failure in failures)
        raise ModelLoadError(
            f"Every load strategy failed for {source!r} ({tried}). Refusing to serve wrong vectors. "
            "Check that torch is the CPU build pinned in requirements.txt, that nothing sets torch's "
            "default device to 'meta', and that the model folder holds its weights."
        )


def load_onnx(source: str, *, threads: int | None = None) -> LoadedModel:
    """The ONNX Runtime backend: load the folder's `onnx/model.onnx`, check a probe, warm it up.
    Nothing imports torch. Raises `ModelLoadError`."""
    started = time.perf_counter()
    from embedding_engine.onnx_model import load_onnx_model

    imported = time.perf_counter()
    model = load_onnx_model(source, threads=threads or 1)
    check_probe(model)
    loaded = time.perf_counter()
    warm_up(model)
    timings = {
        "imports": elapsed_ms(started, imported),
        "load": elapsed_ms(imported, loaded),
        "warmup": elapsed_ms(loaded),
    }
    logger.info("model ready", extra={"strategy": "onnx", "fallback": False, "timings_ms": timings})
    return LoadedModel(model=model, report=LoadReport(source, "onnx", (), timings))


def _summarize(exc: BaseException) -> str:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first_line[:300]}"
