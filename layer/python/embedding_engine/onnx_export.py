"""Export a sentence-transformers model folder's transformer to ONNX (build time only: imports torch).

    python -m embedding_engine.onnx_export SRC_MODEL_DIR OUT_MODEL_DIR

copies SRC_MODEL_DIR to OUT_MODEL_DIR and writes OUT_MODEL_DIR/onnx/model.onnx: the transformer with
inputs `input_ids`, `attention_mask` (and `token_type_ids` when the model takes them), dynamic batch
and sequence axes, and one output, `last_hidden_state`. Pooling and normalisation stay outside the
graph (`onnx_model.py` reads them from the folder), so one file serves every pooling mode. Needs the
`onnx` package (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

ONNX_FILE = Path("onnx") / "model.onnx"
OPSET = 17


def transformer_dir(model_dir: Path) -> Path:
    """The folder of the model's Transformer module (modules.json), the model folder itself when none."""
    modules_file = model_dir / "modules.json"
    if modules_file.is_file():
        for module in json.loads(modules_file.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith(".Transformer"):
                return model_dir / str(module.get("path", ""))
    return model_dir


def export_onnx(source: str | Path, target: str | Path, *, opset: int = OPSET) -> Path:
    """Copy the model folder `source` to `target` and export its transformer to `target`/onnx/model.onnx
    (replacing any there). Returns the ONNX file's path."""
    import torch
    from transformers import AutoModel

    source, target = Path(source), Path(target)
    if not (source / "config.json").is_file() and not (transformer_dir(source) / "config.json").is_file():
        raise FileNotFoundError(
            f"{source} is not a sentence-transformers model folder (no config.json): give a folder saved "
            "with SentenceTransformer.save()."
        )
    if source.resolve() != target.resolve():
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("onnx"))
    model = AutoModel.from_pretrained(
        transformer_dir(target), local_files_only=True, attn_implementation="eager"
    ).eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")

    class Wrapped(torch.nn.Module):
        """The model called with keyword arguments, returning only `last_hidden_state`."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state  # type: ignore[no-any-return]

    sample = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    inputs = (sample, (sample != 0).to(torch.int64), torch.zeros_like(sample))[: len(names)]
    output = target / ONNX_FILE
    output.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with torch.inference_mode(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (dynamo=False), and its tracer's warnings are
        # about branches that are constant for an encoder (the attention mask always covers the input).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapped(model),
            inputs,
            str(output),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("source", help="a folder saved with SentenceTransformer.save()")
    parser.add_argument("target", help="where to write the copy with onnx/model.onnx")
    args = parser.parse_args(argv)
    try:
        print(export_onnx(args.source, args.target))
    except (FileNotFoundError, OSError, ValueError) as exc:
        parser.error(str(exc))  # exits with status 2 and the message
    return 0


if __name__ == "__main__":
    sys.exit(main())
