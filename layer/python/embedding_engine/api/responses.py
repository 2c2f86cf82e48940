"""The success bodies the endpoints answer with, as models for /openapi.json only: the endpoints build
plain dicts (and numpy arrays), and tests/test_openapi.py validates real responses against these
schemas, so neither side can change alone. Unknown fields are forbidden, so a new field fails it too."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Embedding(Closed):
    object: Literal["embedding"]
    index: int = Field(description="The input's position in the request.")
    embedding: list[float] | str = Field(
        description="The vector; with `encoding_format: base64`, its little-endian float32 bytes in base64."
    )


class Usage(Closed):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(Closed):
    """OpenAI's embeddings response: one embedding per input, in input order."""

    object: Literal["list"]
    data: list[Embedding]
    model: str = Field(description="The served model's id.")
    usage: Usage


class EmbedResponse(RootModel[list[list[float]]]):
    """TEI's embed response: one vector per input, in input order."""


class SearchHit(Closed):
    text: str
    source: str = Field(description="The document's S3 URL or local path.")
    chunk: int = Field(description="The chunk's position in its document.")
    score: float = Field(
        description="Cosine similarity (vector), BM25 (keyword) or the fused score (hybrid)."
    )
    content_type: str
    indexed_at: AwareDatetime


class SearchResponse(Closed):
    """The hits, best first."""

    hits: list[SearchHit]


class FailedStrategy(Closed):
    strategy: str
    error: str


class Memory(Closed):
    allocator: str
    rss_mb: float | None = None
    peak_mb: float | None = None


class HealthResponse(Closed):
    """The model, how it was loaded, and this container's state."""

    status: Literal["ok"]
    model: str
    backend: str
    dimensions: int
    max_sequence_length: int
    torch_threads: int
    max_total_tokens: int
    tokens_per_second: int
    request_timeout_seconds: float
    load_strategy: str
    failed_strategies: list[FailedStrategy]
    timings_ms: dict[str, float]
    init_cold_start: bool
    initialization_type: str | None
    uptime_seconds: float
    invocations: int
    document_store: Literal["configured", "not configured"]
    memory: Memory
