"""The one way this service calls a Hugging Face tokenizer: whole texts (no truncation), in batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

# Texts per tokenizer call: batched, yet peak memory stays bounded on large documents.
BATCH = 1024


def tokenize(tokenizer: Any, texts: Sequence[str], *, special: bool, offsets: bool = False) -> Iterator[Any]:
    """Per text: its token count (special tokens included when `special`), or its token offsets
    when `offsets`. Tokenizes each text whole: cut long ones first (`Embedder.read`)."""
    for first in range(0, len(texts), BATCH):
        encoded = tokenizer(
            list(texts[first : first + BATCH]),
            add_special_tokens=special,
            truncation=False,
            return_offsets_mapping=offsets,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        if offsets:
            yield from encoded["offset_mapping"]
        else:
            yield from (len(ids) for ids in encoded["input_ids"])
