"""`POST /embed`, the text-embeddings-inference contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from embedding_engine.deadline import Deadline
from embedding_engine.embedder import Vectors
from embedding_engine.errors import InvalidInputError
from embedding_engine.service import EmbeddingService, texts_from


class EmbedRequest(BaseModel):
    """TEI's request body. Truncation is opt-in, as in TEI: an over-long input is an error.
    `prompt_name` names one of the model's prompts; without it, the model's default prompt applies."""

    model_config = ConfigDict(extra="ignore")

    inputs: Any = Field(description="A string or an array of strings.")
    normalize: StrictBool = True
    truncate: StrictBool = False
    truncation_direction: Literal["Right", "Left", "right", "left"] = "Right"
    prompt_name: StrictStr | None = None
    dimensions: StrictInt | None = None


def embed(
    request: EmbedRequest, service: EmbeddingService, *, max_response_bytes: int, deadline: Deadline
) -> Vectors:
    """A list of vectors, one per input, in input order."""
    if request.truncation_direction.lower() != "right":
        raise InvalidInputError(
            "Only `truncation_direction: Right` is supported.", param="truncation_direction"
        )
    prompt = service.embedder.prompt(request.prompt_name, param="prompt_name")
    texts = texts_from(request.inputs, "inputs")
    result = service.embed(
        texts,
        param="inputs",
        normalize=request.normalize,
        truncate=request.truncate,
        dimensions=request.dimensions,
        prompt=prompt,
        max_response_bytes=max_response_bytes,
        deadline=deadline,
    )
    return result.vectors
