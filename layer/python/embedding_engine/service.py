"""Request rules shared by every API dialect: limits, token budget, truncation, then the embedding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from embedding_engine.embedder import Embedder, Vectors
from embedding_engine.errors import (
    InputTooLongError,
    InvalidInputError,
    PayloadTooLargeError,
    SchemaError,
)
from embedding_engine.observability import metrics
from embedding_engine.settings import Settings

# The least a float can take in JSON ("0.0123456,"): used to refuse hopeless responses before encoding.
MIN_JSON_BYTES_PER_FLOAT = 8
BASE64_BYTES_PER_FLOAT = 4 / 3 * 4
RESPONSE_ADVICE = (
    "Ask for encoding_format='base64' (about 2.5x smaller than float), fewer inputs per request, "
    "or fewer dimensions."
)


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: Vectors
    prompt_tokens: int


def texts_from(value: Any, param: str) -> list[str]:
    """A string or a list of strings, as a list; token-id arrays get their own clear refusal."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return value
        if all(_is_token_ids(item) for item in value):
            raise InvalidInputError(
                f"`{param}` holds token ids; this service takes text only. Send strings: the "
                "service tokenizes with its own model's tokenizer.",
                param=param,
            )
        index, item = next((i, item) for i, item in enumerate(value) if not isinstance(item, str))
        raise SchemaError(
            f"`{param}` must be a string or a list of strings; item {index} is {type(item).__name__}.",
            param=param,
        )
    raise SchemaError(
        f"`{param}` must be a string or a list of strings, not {type(value).__name__}.", param=param
    )


def _is_token_ids(item: Any) -> bool:
    if isinstance(item, bool):
        return False
    if isinstance(item, int):
        return True
    return (
        isinstance(item, list)
        and bool(item)
        and all(isinstance(token, int) and not isinstance(token, bool) for token in item)
    )


class EmbeddingService:
    """Validates a batch of texts against the limits, then embeds it with the warm model."""

    def __init__(self, embedder: Embedder, settings: Settings) -> None:
        self.embedder = embedder
        self.settings = settings

    def embed(
        self,
        texts: Sequence[str],
        *,
        param: str,
        normalize: bool = True,
        truncate: bool = True,
        dimensions: int | None = None,
        base64: bool = False,
        max_response_bytes: int,
    ) -> EmbeddingResult:
        """Embed `texts`; `param` names the request field in error messages. A batch whose response
        cannot fit in `max_response_bytes` is refused before any work is done."""
        self._check_batch(texts, param)
        self._check_dimensions(dimensions)
        least = len(texts) * (dimensions or self.embedder.dimensions)
        least = int(least * (BASE64_BYTES_PER_FLOAT if base64 else MIN_JSON_BYTES_PER_FLOAT))
        if least > max_response_bytes:
            raise response_too_large(least, max_response_bytes)
        max_tokens = self.embedder.max_seq_length
        counts = self.embedder.token_counts(texts)
        if not truncate:
            longest = max(counts)
            if longest > max_tokens:
                raise InputTooLongError(
                    f"Input validation error: `{param}` must have less than {max_tokens} tokens. "
                    f"Given: {longest}",
                    param=param,
                )
        prompt_tokens = sum(min(count, max_tokens) for count in counts)
        if prompt_tokens > self.settings.max_total_tokens:
            raise InvalidInputError(
                f"Requested {prompt_tokens} tokens, over the limit of "
                f"{self.settings.max_total_tokens} tokens per request: split the batch.",
                param=param,
            )
        vectors = self.embedder.embed(texts, normalize=normalize, dimensions=dimensions)
        metrics.add_metric(name="Inputs", unit=MetricUnit.Count, value=len(texts))
        metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=prompt_tokens)
        return EmbeddingResult(vectors=vectors, prompt_tokens=prompt_tokens)

    def _check_batch(self, texts: Sequence[str], param: str) -> None:
        if not texts:
            raise InvalidInputError(f"`{param}` must not be empty.", param=param)
        if len(texts) > self.settings.max_inputs:
            raise InvalidInputError(
                f"`{param}` has {len(texts)} items; at most {self.settings.max_inputs} per request.",
                param=param,
            )
        empty = [index for index, text in enumerate(texts) if not text]
        if empty:
            raise InvalidInputError(
                f"`{param}` must not contain empty strings (first at index {empty[0]}).", param=param
            )

    def _check_dimensions(self, dimensions: int | None) -> None:
        if dimensions is None:
            return
        if not 1 <= dimensions <= self.embedder.dimensions:
            raise InvalidInputError(
                f"`dimensions` must be between 1 and {self.embedder.dimensions} for "
                f"{self.embedder.model_id}; got {dimensions}.",
                param="dimensions",
            )


def response_too_large(size: int, limit: int) -> PayloadTooLargeError:
    """The 413 for a response that one synchronous Lambda invocation cannot return."""
    return PayloadTooLargeError(
        f"The response would be at least {size} bytes, over the {limit} bytes this invocation can "
        f"return. {RESPONSE_ADVICE}",
        code="response_too_large",
    )
