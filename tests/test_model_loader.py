"""The model loader: explicit CPU load, self-check, and a fallback that really recovers from meta tensors.

The failures here are the real ones: torch's own `NotImplementedError: Cannot copy out of meta
tensor`, transformers' refusal to load under a meta default device, models whose weights silently
stayed on `meta`, and the garbage `to_empty()` leaves behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedding_engine.errors import ModelCheckError, ModelLoadError
from embedding_engine.model_loader import (
    DEFAULT_STRATEGIES,
    load_model,
    reload_clean_on_cpu,
    verify_model,
)
from helpers import cosine_rows

SENTENCES = [
    "Provisioned concurrency keeps Lambda containers initialised.",
    "The cat sat on the mat.",
    "pgvector stores embeddings in PostgreSQL with an HNSW index.",
    "Cold starts load the model during the init phase.",
    "Ein deutscher Satz über Vektoren.",
]
FALLBACK = DEFAULT_STRATEGIES[1]


@pytest.fixture(scope="module")
def source(engine: Any) -> str:
    return str(engine.settings.model_source)


@pytest.fixture(scope="module")
def expected(reference_model: Any) -> Any:
    return reference_model.encode(SENTENCES)


@pytest.fixture
def restore_default_device() -> Iterator[None]:
    previous = torch.get_default_device()
    yield
    torch.set_default_device(previous)


def left_on_meta(source: str) -> SentenceTransformer:
    """A load that returns without error while every weight is still on `meta` (no data)."""
    return SentenceTransformer(source, device="cpu", local_files_only=True).to("meta")


def moved_from_meta(source: str) -> SentenceTransformer:
    """What the seed hit: a model whose weights are on `meta`, moved to the CPU with `.to()`."""
    return left_on_meta(source).to("cpu")


def emptied_to_cpu(source: str) -> SentenceTransformer:
    """`to_empty()` alone: real CPU storage, uninitialised contents."""
    return left_on_meta(source).to_empty(device="cpu")


def test_the_primary_strategy_loads_on_the_cpu(source: str, expected: Any) -> None:
    loaded = load_model(source)
    assert loaded.report.strategy == "cpu"
    assert loaded.report.failed_attempts == ()
    assert isinstance(loaded.model, SentenceTransformer)
    assert {parameter.device.type for parameter in loaded.model.parameters()} == {"cpu"}
    assert set(loaded.report.timings_ms) == {"imports", "load", "warmup"}
    assert cosine_rows(loaded.model.encode(SENTENCES), expected).min() >= 0.9999


def test_the_genuine_meta_tensor_error_is_reproduced(source: str) -> None:
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor; no data!"):
        moved_from_meta(source)


@pytest.mark.parametrize(
    ("failing_strategy", "error_fragment"),
    [
        (moved_from_meta, "NotImplementedError: Cannot copy out of meta tensor"),
        (left_on_meta, "tensors on the meta device"),
        (emptied_to_cpu, "probe"),
    ],
    ids=["torch-error", "silent-meta", "to_empty-garbage"],
)
def test_the_fallback_recovers_with_equal_embeddings(
    source: str, expected: Any, failing_strategy: Any, error_fragment: str
) -> None:
    loaded = load_model(source, strategies=[("cpu", failing_strategy), FALLBACK])
    assert loaded.report.strategy == "clean-cpu-reload"
    [failure] = loaded.report.failed_attempts
    assert failure.strategy == "cpu"
    assert error_fragment in failure.error
    assert isinstance(loaded.model, SentenceTransformer)
    assert not any(tensor.is_meta for tensor in loaded.model.parameters())
    assert cosine_rows(loaded.model.encode(SENTENCES), expected).min() >= 0.9999


@pytest.mark.usefixtures("restore_default_device")
def test_a_leaked_meta_default_device_is_recovered_by_the_default_strategies(
    source: str, expected: Any
) -> None:
    torch.set_default_device("meta")
    loaded = load_model(source)
    assert [attempt.strategy for attempt in loaded.report.failed_attempts] == ["cpu"]
    assert "meta" in loaded.report.failed_attempts[0].error
    assert loaded.report.strategy == "clean-cpu-reload"
    assert torch.get_default_device().type == "cpu"
    assert cosine_rows(loaded.model.encode(SENTENCES), expected).min() >= 0.9999


def test_init_fails_loudly_when_every_strategy_fails(source: str) -> None:
    with pytest.raises(ModelLoadError) as raised:
        load_model(source, strategies=[("cpu", moved_from_meta), ("again", left_on_meta)])
    message = str(raised.value)
    assert "cpu: NotImplementedError: Cannot copy out of meta tensor" in message
    assert "again: ModelCheckError" in message
    assert "Refusing to serve wrong vectors" in message


def test_a_folder_without_a_model_is_a_clear_load_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="MODEL_PATH"):
        load_model(str(tmp_path))


def test_the_self_check_rejects_non_finite_weights(source: str) -> None:
    model = reload_clean_on_cpu(source)
    verify_model(model)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ModelCheckError, match="not finite"):
        verify_model(model)
