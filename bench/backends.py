"""torch against ONNX Runtime by batch size, in one process, rounds alternating (`make bench`; alone
`python -m bench.backends`): each backend's `Embedder.embed` (the service's path) on the same texts,
the bundled all-MiniLM-L6-v2 and its ONNX export (.cache/models/, made by `make image` or the tests)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.plots import plot_backends
from bench.report import markdown_row
from bench.run import REPO, RESULTS
from embedding_engine.embedder import Embedder
from embedding_engine.model_loader import load_model, load_onnx
from embedding_engine.settings import Settings, bundled_model_path

ONNX_DIR = REPO / ".cache" / "models" / "all-MiniLM-L6-v2-onnx"
BATCHES = (1, 8, 32, 128)
SENTENCE = "Provisioned concurrency keeps containers initialised so that requests never wait for init"


def texts(count: int) -> list[str]:
    """Queries and passages of varied length, the same for both backends."""
    return [" ".join([f"{i}:", *SENTENCE.split()[: 4 + (i * 7) % 13]] * (1 + i % 4)) for i in range(count)]


def embedders(threads: int) -> dict[str, Embedder]:
    bundled = str(bundled_model_path())
    if not (ONNX_DIR / "onnx" / "model.onnx").is_file():
        from embedding_engine.onnx_export import export_onnx

        export_onnx(bundled, ONNX_DIR)
    return {
        "torch": Embedder(load_model(bundled, threads=threads).model, model_id="torch"),
        "onnx": Embedder(load_onnx(str(ONNX_DIR), threads=threads).model, model_id="onnx"),
    }


def run(rounds: int, repeats: int) -> dict[str, Any]:
    threads = Settings.from_env().torch_threads
    models = embedders(threads)
    samples: dict[str, dict[int, list[float]]] = {name: {size: [] for size in BATCHES} for name in models}
    for _ in range(rounds):
        for size in BATCHES:
            batch = texts(size)
            for name, embedder in models.items():
                read = embedder.read(batch)
                started = time.perf_counter()
                for _ in range(repeats):
                    embedder.embed(read.texts, tokens=read.tokens)
                samples[name][size].append((time.perf_counter() - started) * 1000 / repeats)
    medians = {
        name: {
            str(size): {
                "ms": round(statistics.median(ms), 2),
                "inputs_per_s": round(size * 1000 / statistics.median(ms), 1),
            }
            for size, ms in by_size.items()
        }
        for name, by_size in samples.items()
    }
    return {"model": "all-MiniLM-L6-v2", "threads": threads, "rounds": rounds, "medians": medians}


def table(results: dict[str, Any]) -> str:
    lines = [markdown_row("Batch", "torch", "onnx", "onnx ÷ torch (time)"), markdown_row(*["---:"] * 4)]
    for size in map(str, BATCHES):
        torch, onnx = results["medians"]["torch"][size], results["medians"]["onnx"][size]
        lines.append(
            markdown_row(
                size,
                f"{torch['ms']:.1f} ms ({torch['inputs_per_s']:.0f}/s)",
                f"{onnx['ms']:.1f} ms ({onnx['inputs_per_s']:.0f}/s)",
                f"{onnx['ms'] / torch['ms']:.2f}",
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = run(args.rounds, args.repeats)
    date = datetime.now(UTC).date().isoformat()
    out = RESULTS / f"{date}-backends.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    figure = plot_backends(results, RESULTS / f"{date}-backends.png")
    print(table(results))
    for path in (out, figure):
        print(f"written to {Path(path).relative_to(REPO)}")


if __name__ == "__main__":
    main()
