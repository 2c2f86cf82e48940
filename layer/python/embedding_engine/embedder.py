"""The warm model behind one small interface: read texts (cut, counted), embed them in time."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from embedding_engine.deadline import Deadline
from embedding_engine.errors import DeadlineExceededError
from embedding_engine.prompts import prompt_text, role_prompt
from embedding_engine.tokens import tokenize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embedding_engine.onnx_model import OnnxModel

    Model = SentenceTransformer | OnnxModel

Vectors = npt.NDArray[np.float32]

# An input is read up to max_seq_length x this many characters: English averages 4-5 characters per
# token, so the cut keeps far more text than the model reads. When that is not enough tokens (long
# runs of spaces, say), the window grows up to MAX_CHARS_PER_TOKEN; past that, nothing more is read.
CHARS_PER_TOKEN = 16
MAX_CHARS_PER_TOKEN = 64
# Batches smaller than this many padded tokens do not update the throughput estimate: per-call
# overhead dominates them, and they are fast anyway.
MIN_MEASURED_TOKENS = 512
_LAST_WORD = re.compile(r"\S+\Z")


@dataclass(frozen=True)
class ReadTexts:
    """Texts as the model reads them: each cut to what can change its vector, with its token count
    (special tokens and the prompt's included) counted on the prompt and the cut text; a count over
    `max_seq_length` means "at least". The texts do not hold the prompt."""

    texts: list[str]
    tokens: list[int]
    prompt_tokens: int = 0  # what the prompt adds to each count


class Throughput:
    """Padded tokens per second this model encodes on this CPU: measured at init, then a moving
    average over real batches (so a busier or slower CPU is noticed)."""

    def __init__(self, tokens_per_second: float) -> None:
        self.tokens_per_second = tokens_per_second

    def observe(self, padded_tokens: int, seconds: float) -> None:
        if padded_tokens >= MIN_MEASURED_TOKENS and seconds > 0:
            self.tokens_per_second = 0.8 * self.tokens_per_second + 0.2 * padded_tokens / seconds

    def seconds_for(self, padded_tokens: int) -> float:
        return padded_tokens / self.tokens_per_second


def raw_variant(model: Model) -> Model | None:
    """`model` without its trailing normalisation, or None when it does not normalise. Only a
    SentenceTransformer needs sentence-transformers (and torch) imported here."""
    from embedding_engine.onnx_model import OnnxModel

    if isinstance(model, OnnxModel):
        return model.without_normalize() if model.normalize else None
    from sentence_transformers.sentence_transformer.modules import Normalize

    modules = list(model)
    if modules and isinstance(modules[-1], Normalize):
        return type(model)(modules=modules[:-1], device="cpu")
    return None


class Embedder:
    """Wraps a loaded model, a SentenceTransformer or an `OnnxModel` (the ONNX Runtime backend);
    encodes one batch at a time (the CPU has no spare cores)."""

    def __init__(self, model: Model, *, model_id: str, batch_size: int = 32) -> None:
        self.model = model
        self.model_id = model_id
        self.batch_size = batch_size
        self.dimensions: int = int(model.get_embedding_dimension() or 0)
        self._tokenizer = model.tokenizer
        # Inputs are truncated to this many tokens (the tokenizer's limit when the model sets none).
        self.max_seq_length: int = int(model.max_seq_length or self._tokenizer.model_max_length)
        self.special_tokens: int = int(self._tokenizer.num_special_tokens_to_add())
        self.throughput = Throughput(tokens_per_second=1000.0)  # until `measure_throughput`
        self._lock = threading.Lock()
        # The model without its normalisation, for callers that ask for raw (unnormalised) vectors.
        self._raw_model = raw_variant(model)
        # The model's prompts (config_sentence_transformers.json), applied here: never by the model.
        self.prompts: dict[str, str] = {name: text or "" for name, text in model.prompts.items()}
        self.default_prompt_name: str | None = model.default_prompt_name

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer: Hugging Face's, or its API over `tokenizers` (`RawTokenizer`)."""
        return self._tokenizer

    def prompt(self, name: str | None = None, *, param: str = "prompt_name") -> str:
        """The text of the prompt `name`, or of the default prompt when None ("" when none is set).
        An unknown name is an `InvalidInputError` on `param` listing the model's prompt names."""
        return prompt_text(self.prompts, self.default_prompt_name, name, param=param)

    @property
    def query_prompt(self) -> str:
        """The prefix of a search query ("" when the model declares none)."""
        return role_prompt(self.prompts, "query")

    @property
    def document_prompt(self) -> str:
        """The prefix of a document or passage to search ("" when the model declares none)."""
        return role_prompt(self.prompts, "document")

    def prompt_tokens(self, prompt: str) -> int:
        """Tokens `prompt` adds to a text (special tokens excluded): to leave it room in a chunk."""
        return int(next(tokenize(self._tokenizer, [prompt], special=False))) if prompt else 0

    def token_counts(self, texts: Sequence[str], *, prompt: str = "") -> list[int]:
        """Tokens per text with `prompt` before it, special tokens included, before any truncation
        (tokenizes all of it)."""
        return list(tokenize(self._tokenizer, [prompt + text for text in texts], special=True))

    def read(self, texts: Sequence[str], *, prompt: str | None = None) -> ReadTexts:
        """Cut each text to what the model can read after `prompt` (None: the default prompt), then
        count the tokens of both. The tokenizer never sees a whole multi-megabyte input (it would
        allocate for every token before truncating)."""
        prompt = self.prompt(None) if prompt is None else prompt
        window = self.max_seq_length * CHARS_PER_TOKEN
        cut = list(texts)
        tokens = self.token_counts([text if len(text) <= window else "" for text in cut], prompt=prompt)
        for index, text in enumerate(cut):
            if len(text) > window:
                cut[index], tokens[index] = self._cut(text, prompt)
        return ReadTexts(texts=cut, tokens=tokens, prompt_tokens=self.prompt_tokens(prompt))

    def _cut(self, text: str, prompt: str) -> tuple[str, int]:
        """`text` cut where it can no longer change the vector: after enough whole words to exceed
        `max_seq_length` tokens (the model reads the first tokens only, and a word cut in two could
        tokenize differently). The window doubles while it holds too few tokens; at
        MAX_CHARS_PER_TOKEN per token it is cut there, whatever it holds."""
        window = self.max_seq_length * CHARS_PER_TOKEN
        while window < len(text):
            at_limit = window >= self.max_seq_length * MAX_CHARS_PER_TOKEN
            head = text[:window]
            last_word = None if text[window].isspace() else _LAST_WORD.search(head)
            if last_word is not None and not at_limit:
                head = head[: last_word.start()]  # "" when the window is one word: grow it
            if head:
                [count] = self.token_counts([head], prompt=prompt)
                if count > self.max_seq_length or at_limit:
                    return head, count
            window *= 2
        [count] = self.token_counts([text], prompt=prompt)
        return text, count

    def measure_throughput(self, texts: Sequence[str], *, runs: int = 2) -> float:
        """Time `runs` encodes of `texts` (after the warm-up) and start the throughput estimate from the
        fastest: a busy moment can only slow a run down."""
        read = self.read(texts, prompt="")
        padded = len(read.texts) * min(max(read.tokens), self.max_seq_length)
        fastest = float("inf")
        for _ in range(runs):
            started = time.perf_counter()
            with self._lock:
                self.model.encode(read.texts, batch_size=len(read.texts), convert_to_numpy=True, prompt="")
            fastest = min(fastest, time.perf_counter() - started)
        self.throughput = Throughput(padded / fastest)
        return self.throughput.tokens_per_second

    def embed(
        self,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        dimensions: int | None = None,
        tokens: Sequence[int] | None = None,
        deadline: Deadline | None = None,
        prompt: str | None = None,
    ) -> Vectors:
        """Embed `texts` after `prompt` (None: the default prompt; pass `read`'s) and truncated to the
        model's max sequence length, optionally shortened to `dimensions` (Matryoshka-style: keep the
        first components, then re-normalise). Texts go by length, one batch at a time; before each
        batch, `DeadlineExceededError` if it cannot finish by `deadline` at the measured throughput.
        `tokens` (from `read`, with the same prompt) sharpen that estimate."""
        model = self.model if normalize or self._raw_model is None else self._raw_model
        prompt = self.prompt(None) if prompt is None else prompt
        lengths = (
            [min(n, self.max_seq_length) for n in tokens]
            if tokens is not None
            else [min(len(prompt + text) // 4 + 2, self.max_seq_length) for text in texts]
        )
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        batches = [order[first : first + self.batch_size] for first in range(0, len(order), self.batch_size)]
        padded = [len(batch) * lengths[batch[0]] for batch in batches]
        if deadline is not None:
            self._check_time(deadline, sum(padded), done=0, total=len(texts))
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        done = 0
        for batch, batch_tokens in zip(batches, padded, strict=True):
            if deadline is not None and done:
                self._check_time(deadline, batch_tokens, done=done, total=len(texts))
            started = time.perf_counter()
            with self._lock:
                vectors[batch] = model.encode(
                    [texts[i] for i in batch],
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=normalize,
                    prompt=prompt,  # never None: sentence-transformers would add its default prompt
                )
            self.throughput.observe(batch_tokens, time.perf_counter() - started)
            done += len(batch)
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = vectors[:, :dimensions]
            if normalize:
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.maximum(norms, np.finfo(np.float32).tiny)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _check_time(self, deadline: Deadline, padded_tokens: int, *, done: int, total: int) -> None:
        """Refuse the work left (all of it when `done` is 0) if it cannot finish by `deadline`."""
        needed, left = self.throughput.seconds_for(padded_tokens), deadline.remaining()
        if needed <= left:
            return
        if done:
            what = f"Stopped after {done} of {total} inputs: the next batch needs about {needed:.1f} s"
        else:
            what = f"These {total} inputs need about {needed:.1f} s of encoding"
        raise DeadlineExceededError(
            f"{what} at this function's measured speed, and {max(left, 0):.1f} s are left before the "
            "request's deadline. Split the request into smaller ones (or give the function more memory, "
            "which buys CPU).",
            code="deadline_exceeded",
        )
