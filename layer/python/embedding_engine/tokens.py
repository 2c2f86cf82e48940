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


class RawTokenizer:
    """The subset of a Hugging Face tokenizer's API this service uses (`tokenize`, chunking,
    `Embedder`), over a `tokenizers.Tokenizer`: for the ONNX backend, which has no transformers.
    It never truncates nor pads: `tokenize` counts and cuts whole texts."""

    def __init__(self, tokenizer: Any, *, model_max_length: int) -> None:
        self.backend_tokenizer = tokenizer
        self.model_max_length = model_max_length
        self._special = int(tokenizer.num_special_tokens_to_add(False))

    def num_special_tokens_to_add(self) -> int:
        """Special tokens added to one text (not a pair: this service never encodes pairs)."""
        return self._special

    def __call__(
        self,
        texts: list[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        return_offsets_mapping: bool = False,
        return_attention_mask: bool = False,
        return_token_type_ids: bool = False,
        verbose: bool = False,
    ) -> dict[str, Any]:
        """`input_ids` (and `offset_mapping` when asked) per text, as transformers gives them; masks
        and type ids are never asked for here (`tokenize`), so none are made."""
        if truncation or return_attention_mask or return_token_type_ids:
            raise ValueError("RawTokenizer counts and cuts whole texts (`tokenize`): no truncation, no masks")
        encode = (
            self.backend_tokenizer.encode_batch
            if return_offsets_mapping
            else self.backend_tokenizer.encode_batch_fast
        )
        encodings = encode(list(texts), add_special_tokens=add_special_tokens)
        result: dict[str, Any] = {"input_ids": [encoding.ids for encoding in encodings]}
        if return_offsets_mapping:
            result["offset_mapping"] = [encoding.offsets for encoding in encodings]
        return result
