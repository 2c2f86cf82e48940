"""`make bench`: one command, one run, one machine. Prints a Markdown table, writes bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args()
    started = time.perf_counter()
    from bench.indexing import measure_indexing
    from embedding_engine.engine import Engine
    from embedding_engine.settings import Settings

    engine = Engine.start(Settings.from_env(), init_started=started)
    repetitions = 2 if args.quick else 5
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": engine.embedder.model_id,
        "indexing": measure_indexing(engine, documents=10 if args.quick else 40, repetitions=repetitions),
    }
    RESULTS.mkdir(exist_ok=True)
    name = engine.embedder.model_id.rsplit("/", 1)[-1]
    path = RESULTS / f"{results['when'][:10]}-{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nwritten to {path.relative_to(RESULTS.parent.parent)}")


def table(results: dict[str, Any]) -> str:
    indexing = results["indexing"]
    machine_line = ", ".join(f"{key} {value}" for key, value in results["machine"].items())
    return "\n".join(
        [
            f"### {results['model']} ({machine_line})",
            "",
            "| Measure | Median | Beside it | Ratio |",
            "| --- | --- | --- | --- |",
            f"| Indexing, chunks/s: S3 fetch → extract → chunk → embed → PostgreSQL "
            f"({indexing['documents']} docs, {indexing['chunks']} chunks, {indexing['repetitions']} runs) "
            f"| {indexing['pipeline_chunks_per_s']} | raw `encode`: {indexing['encode_chunks_per_s']} "
            f"| {indexing['ratio']} |",
        ]
    )


if __name__ == "__main__":
    main()
