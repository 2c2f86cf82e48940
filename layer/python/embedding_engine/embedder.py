"""The warm model behind one small interface: count tokens, embed texts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = npt.NDArray[np.float32]


class Embedder:
    """Wraps a loaded SentenceTransformer; encodes one batch at a time (the CPU has no spare cores)."""

    def __init__(self, model: SentenceTransformer, *, model_id: str, batch_size: int = 32) -> None:
        from sentence_transformers.sentence_transformer.modules import Normalize

        self.model = model
        self.model_id = model_id
        self.batch_size = batch_size
        self.dimensions: int = int(model.get_embedding_dimension() or 0)
        self._tokenizer = model.tokenizer
        # Inputs are truncated to this many tokens (the tokenizer's limit when the model sets none).
        self.max_seq_length: int = int(model.max_seq_length or self._tokenizer.model_max_length)
        self._lock = threading.Lock()
        modules = list(model)
        # Without its trailing Normalize module, for callers that ask for raw (unnormalised) vectors.
        self._raw_model: SentenceTransformer | None = None
        if modules and isinstance(modules[-1], Normalize):
            self._raw_model = type(model)(modules=modules[:-1], device="cpu")

    @property
    def tokenizer(self) -> Any:
        """The model's own Hugging Face tokenizer."""
        return self._tokenizer

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included, before any truncation."""
        encoded = self._tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=False,
            verbose=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(
        self, texts: Sequence[str], *, normalize: bool = True, dimensions: int | None = None
    ) -> Vectors:
        """Embed `texts` (truncated to the model's max sequence length), optionally shortened to
        `dimensions` (Matryoshka-style: keep the first components, then re-normalise)."""
        model = self.model if normalize or self._raw_model is None else self._raw_model
        with self._lock:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=normalize,
            )
        vectors = np.asarray(vectors, dtype=np.float32)
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = vectors[:, :dimensions]
            if normalize:
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.maximum(norms, np.finfo(np.float32).tiny)
        return np.ascontiguousarray(vectors, dtype=np.float32)
