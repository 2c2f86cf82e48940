"""Request rules shared by every API dialect: limits, token budget, truncation, then the embedding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from embedding_engine.deadline import Deadline
from embedding_engine.embedder import Embedder, ReadTexts, Vectors
from embedding_engine.errors import (
    InputTooLongError,
    InvalidInputError,
    PayloadTooLargeError,
    SchemaError,
    json_type,
)
from embedding_engine.limits import response_bytes
from embedding_engine.observability import metrics
from embedding_engine.settings import Settings

RESPONSE_ADVICE = (
    "Ask for encoding_format='base64' (about 2.5x smaller than float), fewer inputs per request, "
    "or fewer dimensions."
)


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: Vectors
    prompt_tokens: int


def texts_from(value: Any, param: str) -> list[str]:
    """A string or an array of strings, as a list; token-id arrays get their own clear refusal."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return value
        if all(_is_token_ids(item) for item in value):
            raise InvalidInputError(token_ids_refusal(param, batch=isinstance(value[0], list)), param=param)
        index, item = next((i, item) for i, item in enumerate(value) if not isinstance(item, str))
        raise SchemaError(
            f"`{param}` must be a string or an array of strings; item {index} is {json_type(item)}.",
            param=param,
        )
    raise SchemaError(
        f"`{param}` must be a string or an array of strings, not {json_type(value)}.", param=param
    )


def token_ids_refusal(param: str, *, batch: bool) -> str:
    """Why token ids are refused, and what to change. A batch of token-id arrays is what LangChain's
    `OpenAIEmbeddings` sends by default (tiktoken's cl100k ids, meaningless to this model): name the
    setting that makes it send text."""
    message = (
        f"`{param}` holds token ids; this service takes text only. Send strings: the service tokenizes "
        "with its own model's tokenizer."
    )
    if batch:
        message += (
            " LangChain's OpenAIEmbeddings sends token ids unless created with "
            "check_embedding_ctx_length=False: set it (long texts are then cut to the model's maximum "
            "sequence length here, not split by tiktoken)."
        )
    return message


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

    def __init__(self, embedder: Embedder, settings: Settings, *, max_total_tokens: int) -> None:
        self.embedder = embedder
        self.settings = settings
        self.max_total_tokens = max_total_tokens

    def embed(
        self,
        texts: Sequence[str],
        *,
        param: str,
        normalize: bool = True,
        truncate: bool = True,
        dimensions: int | None = None,
        base64: bool = False,
        prompt: str,
        max_response_bytes: int,
        deadline: Deadline,
    ) -> EmbeddingResult:
        """Embed `texts`, each after `prompt` (whose tokens count everywhere: the token budget, the
        truncation rules, the usage); `param` names the request field in error messages. Whatever can
        be refused is refused before the model runs: a response over `max_response_bytes`, a token
        budget overrun; and the model stops, with a 503, when the next batch cannot finish by `deadline`."""
        self._check_batch(texts, param)
        self._check_dimensions(dimensions)
        size = response_bytes(len(texts), dimensions or self.embedder.dimensions, base64=base64)
        if size > max_response_bytes:
            raise response_too_large(size, max_response_bytes)
        read = self.embedder.read(texts, prompt=prompt)
        check_readable(read, self.embedder, param)
        max_tokens = self.embedder.max_seq_length
        if not truncate:
            self._check_not_truncated(read, texts, param)
        prompt_tokens = sum(min(count, max_tokens) for count in read.tokens)
        if prompt_tokens > self.max_total_tokens:
            raise InvalidInputError(
                f"Requested {prompt_tokens} tokens, over the limit of {self.max_total_tokens} tokens per "
                "request: split the batch.",
                param=param,
            )
        vectors = self.embedder.embed(
            read.texts,
            normalize=normalize,
            dimensions=dimensions,
            tokens=read.tokens,
            deadline=deadline,
            prompt=prompt,
        )
        metrics.add_metric(name="Inputs", unit=MetricUnit.Count, value=len(texts))
        metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=prompt_tokens)
        return EmbeddingResult(vectors=vectors, prompt_tokens=prompt_tokens)

    def _check_not_truncated(self, read: ReadTexts, texts: Sequence[str], param: str) -> None:
        """TEI's refusal of an over-long input when truncation is off. An input cut before it was
        counted is known to be longer than its cut's count, not by how much."""
        max_tokens = self.embedder.max_seq_length
        index = max(range(len(texts)), key=lambda i: read.tokens[i])
        longest = read.tokens[index]
        if longest > max_tokens:
            given = str(longest) if len(read.texts[index]) == len(texts[index]) else f"at least {longest}"
            raise InputTooLongError(
                f"Input validation error: `{param}` must have less than {max_tokens} tokens. Given: {given}",
                param=param,
            )

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


def check_readable(read: ReadTexts, embedder: Embedder, param: str) -> None:
    """Refuse texts in which the model finds nothing to read (only spaces, control or zero-width
    characters): they would all get the same meaningless vector, as an empty string would. A prompt's
    tokens are not text to read."""
    nothing = embedder.special_tokens + read.prompt_tokens
    blank = [index for index, count in enumerate(read.tokens) if count <= nothing]
    if blank:
        where = "" if len(read.tokens) == 1 else f" (first at index {blank[0]})"
        raise InvalidInputError(
            f"`{param}` must contain text: only whitespace, control or invisible characters{where}.",
            param=param,
        )


def response_too_large(size: int, limit: int) -> PayloadTooLargeError:
    """The 413 for a response that one synchronous Lambda invocation cannot return."""
    return PayloadTooLargeError(
        f"The response would take about {size} bytes, over the {limit} bytes this invocation can "
        f"return. {RESPONSE_ADVICE}",
        code="response_too_large",
    )
