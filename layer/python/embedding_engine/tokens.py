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

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._special if not pair else int(self.backend_tokenizer.num_special_tokens_to_add(True))

    def __call__(
        self,
        texts: str | list[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        return_offsets_mapping: bool = False,
        return_attention_mask: bool = False,
        return_token_type_ids: bool = False,
        verbose: bool = False,
    ) -> dict[str, Any]:
        """`input_ids` (and `offset_mapping` when asked) for one text or a list, as transformers gives."""
        if truncation:
            raise ValueError("RawTokenizer does not truncate: cut texts first (Embedder.read)")
        single = isinstance(texts, str)
        batch = [texts] if isinstance(texts, str) else list(texts)
        if return_offsets_mapping:
            encodings = self.backend_tokenizer.encode_batch(batch, add_special_tokens=add_special_tokens)
        else:
            encodings = self.backend_tokenizer.encode_batch_fast(batch, add_special_tokens=add_special_tokens)
        result: dict[str, Any] = {"input_ids": [encoding.ids for encoding in encodings]}
        if return_offsets_mapping:
            result["offset_mapping"] = [encoding.offsets for encoding in encodings]
        if return_attention_mask:
            result["attention_mask"] = [encoding.attention_mask for encoding in encodings]
        if return_token_type_ids:
            result["token_type_ids"] = [encoding.type_ids for encoding in encodings]
        return {key: value[0] for key, value in result.items()} if single else result
