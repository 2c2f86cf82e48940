"""`POST /v1/embeddings`, the OpenAI contract (what the official `openai` client sends and reads)."""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from embedding_engine.deadline import Deadline
from embedding_engine.errors import InvalidInputError
from embedding_engine.service import EmbeddingService, texts_from


class EmbeddingsRequest(BaseModel):
    """OpenAI's request body; unknown fields are ignored, as OpenAI-compatible servers do. `input_type`
    ("query" or "document", as Voyage and Cohere take it) picks the model's prompt for that role."""

    model_config = ConfigDict(extra="ignore")

    input: Any = Field(description="A string or an array of strings.")
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None
    user: StrictStr | None = None
    input_type: StrictStr | None = None


def create_embeddings(
    request: EmbeddingsRequest, service: EmbeddingService, *, max_response_bytes: int, deadline: Deadline
) -> dict[str, Any]:
    """The OpenAI response body; vectors stay numpy arrays until serialised."""
    texts = texts_from(request.input, "input")
    model_id = served_model(request.model, service)
    as_base64 = request.encoding_format == "base64"
    result = service.embed(
        texts,
        param="input",
        dimensions=request.dimensions,
        base64=as_base64,
        prompt=input_prompt(request.input_type, service),
        max_response_bytes=max_response_bytes,
        deadline=deadline,
    )
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _base64_float32(vector) if as_base64 else vector,
        }
        for index, vector in enumerate(result.vectors)
    ]
    tokens = result.prompt_tokens
    return {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def served_model(requested: str | None, service: EmbeddingService) -> str:
    """The id echoed back: always the served model's; in strict mode another id is refused."""
    served = service.embedder.model_id
    if service.settings.strict_model and requested not in (None, served):
        raise InvalidInputError(
            f"The model `{requested}` is not served here; this endpoint serves `{served}`.",
            param="model",
            code="model_not_found",
        )
    return served


def input_prompt(input_type: str | None, service: EmbeddingService) -> str:
    """The prompt for `input_type`: the model's query or document prompt, or its default prompt
    (if any) when the type is not given."""
    embedder = service.embedder
    if input_type is None:
        return embedder.prompt(None)
    if input_type == "query":
        return embedder.query_prompt
    if input_type == "document":
        return embedder.document_prompt
    raise InvalidInputError(
        f"`input_type` must be `query` or `document` (or absent); got `{input_type}`.",
        param="input_type",
    )


def _base64_float32(vector: Any) -> str:
    """Little-endian float32 bytes, base64-encoded: what the openai client decodes."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
