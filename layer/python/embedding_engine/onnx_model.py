"""The opt-in ONNX Runtime backend: a sentence-transformers model folder run without torch.

`load_onnx_model` reads the folder's `onnx/model.onnx` (the transformer; `onnx_export.py` writes one)
with onnxruntime, its `tokenizer.json` with the `tokenizers` library, and the rest of the pipeline
from the folder's own files, as sentence-transformers would: the maximum sequence length
(`sentence_bert_config.json`), the pooling (`1_Pooling/config.json`), whether vectors are
normalised (a Normalize module in `modules.json`) and the prompts (`config_sentence_transformers.json`).
Nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from embedding_engine.errors import ModelLoadError
from embedding_engine.prompts import config_prompts
from embedding_engine.tokens import RawTokenizer

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

ONNX_FILE = Path("onnx") / "model.onnx"
POOLING_MODES = ("mean", "cls", "lasttoken")
_LEGACY_POOLING = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
}
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")
_EXPORT_HINT = (
    "Export one with `python -m embedding_engine.onnx_export {folder} OUT_DIR` (needs torch and onnx, "
    "at build time) and point the service at OUT_DIR, or use the torch backend."
)

Vectors = npt.NDArray[np.float32]


@dataclass(eq=False)  # not frozen: tests wrap `encode` on an instance, as they do a SentenceTransformer's
class OnnxModel:
    """What `Embedder` uses of a SentenceTransformer, backed by an onnxruntime session."""

    session: InferenceSession
    tokenizer: RawTokenizer  # whole texts, for counting and chunking
    encoder: Tokenizer  # truncates to `max_seq_length` and pads to the longest in a batch
    pooling: str
    normalize: bool
    max_seq_length: int
    dimension: int
    input_names: tuple[str, ...]
    output_name: str
    prompts: dict[str, str]
    default_prompt_name: str | None
    include_prompt: bool  # the Pooling's: False leaves the prompt's tokens out of the pooled vector

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def without_normalize(self) -> OnnxModel:
        """The same model returning raw pooled vectors (the session and tokenizers are shared)."""
        return replace(self, normalize=False)

    def encode(
        self,
        texts: str | list[str],
        *,
        batch_size: int = 32,
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = False,
        prompt: str | None = None,
    ) -> Vectors:
        """Float32 vectors, one row per text (a single text gives one vector, as sentence-transformers
        does); texts are truncated to `max_seq_length` tokens and run `batch_size` at a time, longest
        first. Normalised when the model normalises or `normalize_embeddings`. `prompt` prefixes each
        text; None means the default prompt, as in sentence-transformers."""
        if prompt is None:
            prompt = self.prompts.get(self.default_prompt_name or "", "")
        batch = [prompt + text for text in ([texts] if isinstance(texts, str) else texts)]
        skip = self._prompt_length(prompt) if prompt and not self.include_prompt else 0
        vectors = np.empty((len(batch), self.dimension), dtype=np.float32)
        order = sorted(range(len(batch)), key=lambda i: -len(batch[i]))
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            vectors[rows] = self._encode_batch([batch[i] for i in rows], skip=skip)
        if self.normalize or normalize_embeddings:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return vectors[0] if isinstance(texts, str) else vectors

    def _prompt_length(self, prompt: str) -> int:
        """The prompt's leading tokens (its trailing special token excluded), as sentence-transformers
        leaves them out of pooling."""
        encoding = self.encoder.encode(prompt)
        return len(encoding.ids) - int(bool(encoding.special_tokens_mask[-1]))

    def _encode_batch(self, texts: list[str], *, skip: int = 0) -> Vectors:
        """Pooled vectors of `texts`, without the first `skip` attended tokens of each (the prompt's)."""
        encodings = self.encoder.encode_batch_fast(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        [hidden] = self.session.run([self.output_name], {k: feeds[k] for k in self.input_names})
        if skip:
            mask = mask * (np.arange(mask.shape[1]) >= mask.argmax(axis=1)[:, None] + skip)
        return pool(np.asarray(hidden, dtype=np.float32), mask, self.pooling)


def pool(hidden: Vectors, mask: npt.NDArray[np.int64], mode: str) -> Vectors:
    """Pool token vectors (batch, sequence, dim) to (batch, dim) over the attention `mask`."""
    pooled: Vectors
    if mode == "cls":  # the first attended token, as sentence-transformers picks it
        pooled = hidden[np.arange(len(hidden)), mask.argmax(axis=1)]
    elif mode == "lasttoken":  # the last attended token (zeros for a row with none)
        last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
        pooled = hidden[np.arange(len(hidden)), last] * mask.any(axis=1, keepdims=True)
    else:  # mean: one batched matrix product, not a (batch, sequence, dim) masked copy
        weights = mask.astype(np.float32)
        summed = np.matmul(weights[:, None, :], hidden)[:, 0]
        pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    return pooled


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Cannot read {path}: {exc}. Is this a folder saved with SentenceTransformer.save()?"
        ) from exc


def read_pooling(model_dir: Path, modules: list[dict[str, Any]]) -> tuple[str, bool]:
    """The one pooling mode of the model's Pooling module (mean when it has none) and whether it pools
    the prompt's tokens too, or ModelLoadError."""
    pooling = next((m for m in modules if str(m.get("type", "")).endswith(".Pooling")), None)
    if pooling is None:
        raise ModelLoadError(
            f"{model_dir}/modules.json has no Pooling module: the ONNX backend pools token vectors itself "
            "and needs one. Use the torch backend for this model."
        )
    config = _read_json(model_dir / str(pooling.get("path", "")) / "config.json")
    mode = config.get("pooling_mode")
    if mode is None:
        mode = [name for key, name in _LEGACY_POOLING.items() if config.get(key)] or ["mean"]
    modes = [mode] if isinstance(mode, str) else list(mode)
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ModelLoadError(
            f"Pooling {modes} in {model_dir}: the ONNX backend supports one of {', '.join(POOLING_MODES)}. "
            "Use the torch backend for this model."
        )
    return str(modes[0]), config.get("include_prompt", True) is not False


def _check_modules(model_dir: Path, modules: list[dict[str, Any]]) -> None:
    unsupported = [
        str(m.get("type")) for m in modules if not str(m.get("type", "")).endswith(_SUPPORTED_MODULES)
    ]
    if unsupported:
        raise ModelLoadError(
            f"{model_dir} has modules the ONNX backend does not run: {', '.join(unsupported)} (it runs "
            f"{', '.join(_SUPPORTED_MODULES)}). Use the torch backend for this model."
        )


def _optional_json(path: Path) -> dict[str, Any]:
    return dict(_read_json(path)) if path.is_file() else {}


def _tokenizers(model_dir: Path, max_seq_length: int, lowercase: bool) -> tuple[RawTokenizer, Tokenizer]:
    """The counting tokenizer (no truncation, no padding) and the encoding one, from tokenizer.json."""
    from tokenizers import Tokenizer, normalizers

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelLoadError(
            f"{model_dir} has no tokenizer.json, which the ONNX backend reads (a fast tokenizer's file). "
            "Save the model with a recent sentence-transformers, or use the torch backend."
        )
    counter = Tokenizer.from_file(str(path))
    if lowercase:  # sentence_bert_config's do_lower_case, applied as sentence-transformers does
        steps = [normalizers.Lowercase()] + ([counter.normalizer] if counter.normalizer else [])
        counter.normalizer = normalizers.Sequence(steps)
    counter.no_truncation()
    counter.no_padding()
    config = _optional_json(model_dir / "tokenizer_config.json")
    encoder = Tokenizer.from_str(counter.to_str())
    truncation_side = str(config.get("truncation_side") or "right")
    encoder.enable_truncation(max_length=max_seq_length, strategy="longest_first", direction=truncation_side)
    special = _optional_json(model_dir / "special_tokens_map.json")
    pad_token = config.get("pad_token") or special.get("pad_token")
    if isinstance(pad_token, dict):
        pad_token = pad_token.get("content")
    pad_id = counter.token_to_id(str(pad_token)) if pad_token else None
    padding_side = str(config.get("padding_side") or "right")  # pooling reads the mask: either side works
    encoder.enable_padding(pad_id=pad_id or 0, pad_token=str(pad_token or "[PAD]"), direction=padding_side)
    # sentence-transformers sets the tokenizer's model_max_length to the model's max_seq_length.
    return RawTokenizer(counter, model_max_length=max_seq_length), encoder


def load_onnx_model(model_dir: str, *, threads: int) -> OnnxModel:
    """Load a sentence-transformers model folder holding `onnx/model.onnx`, to run on `threads` CPU
    threads. Raises `ModelLoadError`, saying what to do, for a folder it cannot run."""
    import onnxruntime

    folder = Path(model_dir)
    onnx_file = folder / ONNX_FILE
    if not onnx_file.is_file():
        raise ModelLoadError(f"{onnx_file} does not exist. " + _EXPORT_HINT.format(folder=folder))
    modules: list[dict[str, Any]] = list(_read_json(folder / "modules.json"))
    _check_modules(folder, modules)
    pooling, include_prompt = read_pooling(folder, modules)
    config_file = folder / "config_sentence_transformers.json"
    prompts, default_prompt_name = config_prompts(_optional_json(config_file), source=config_file)
    normalize = any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
    bert_config = _optional_json(folder / "sentence_bert_config.json")
    config = _optional_json(folder / "config.json")
    max_seq_length = int(
        bert_config.get("max_seq_length")
        or min(_optional_json(folder / "tokenizer_config.json").get("model_max_length", 512), 10**6)
    )
    if config.get("max_position_embeddings", -1) > 0:
        max_seq_length = min(max_seq_length, int(config["max_position_embeddings"]))
    tokenizer, encoder = _tokenizers(folder, max_seq_length, bool(bert_config.get("do_lower_case")))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    outputs = [output.name for output in session.get_outputs()]
    output_name = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
    dimension = session.get_outputs()[outputs.index(output_name)].shape[-1]
    if not isinstance(dimension, int):
        dimension = int(config.get("hidden_size") or config.get("d_model") or 0)
    return OnnxModel(
        session=session,
        tokenizer=tokenizer,
        encoder=encoder,
        pooling=pooling,
        normalize=normalize,
        max_seq_length=max_seq_length,
        dimension=dimension,
        input_names=tuple(i.name for i in session.get_inputs()),
        output_name=output_name,
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        include_prompt=include_prompt,
    )
