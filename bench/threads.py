"""Torch threads against the CPU time a function really has (`make bench`; alone `python -m bench.threads`).

Lambda shows a function 2 CPUs up to 3,008 MB but gives it CPU time in proportion to its memory (one
vCPU's worth at 1,769 MB): the image runs here with both CPUs visible and a CPU quota (`--cpus`) of
1.0, 1.7 (3,008 MB) and 2.0, each with 1 and 2 torch threads (TORCH_NUM_THREADS), alternating, and
records one short query (median) and a batch of 32 passages (inputs/s) through the Runtime API.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.report import markdown_row
from bench.run import LOGS, RESULTS
from helpers import http_api_event, load_event
from lambda_container import Conditions, image_missing, lambda_container

QUOTAS = (1.0, 1.7, 2.0)
THREADS = (1, 2)
PASSAGE = "Provisioned concurrency keeps containers initialised, so a request never waits for init. " * 3
BATCH = json.dumps({"input": [f"{i}: {PASSAGE}" for i in range(32)]})


def measure(quota: float, threads: int, *, queries: int, batches: int, label: str) -> dict[str, Any]:
    """One fresh container at `quota` CPUs with `threads` torch threads."""
    conditions = Conditions(memory_mb=3538, cpus="0-1", cpu_quota=quota)
    log_path = LOGS / "threads" / f"{label}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    query, batch = load_event("apigw_http_v2"), http_api_event(BATCH)
    with lambda_container(log_path, conditions, {"TORCH_NUM_THREADS": str(threads)}) as container:
        container.invoke(query)  # init, and the first request
        latencies, rates = [], []
        for _ in range(queries):
            started = time.perf_counter()
            assert container.invoke(query).json()["statusCode"] == 200
            latencies.append((time.perf_counter() - started) * 1000)
        for _ in range(batches):
            started = time.perf_counter()
            assert container.invoke(batch).json()["statusCode"] == 200
            rates.append(32 / (time.perf_counter() - started))
        init_s = container.init_seconds()
    return {
        "query_ms": statistics.median(latencies),
        "inputs_per_s": statistics.median(rates),
        "init_s": init_s,
    }


def run(repetitions: int, *, queries: int = 30, batches: int = 5) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for repetition in range(repetitions):
        for quota in QUOTAS:
            for threads in THREADS:
                key = f"{quota} CPUs, {threads} threads"
                label = f"q{quota}-t{threads}-{repetition}"
                result = measure(quota, threads, queries=queries, batches=batches, label=label)
                runs.setdefault(key, []).append(result)
                print(f"  {key}: {result}", file=sys.stderr, flush=True)
    medians = {
        key: {name: round(statistics.median(r[name] for r in results), 2) for name in results[0]}
        for key, results in runs.items()
    }
    return {"repetitions": repetitions, "medians": medians, "runs": runs}


def table(results: dict[str, Any]) -> str:
    lines = [
        markdown_row("CPU quota, torch threads", "One short query", "Batch of 32", "Init"),
        markdown_row("---", *["---:"] * 3),
    ]
    for key, m in results["medians"].items():
        lines.append(
            markdown_row(
                key, f"{m['query_ms']:.1f} ms", f"{m['inputs_per_s']:.1f} inputs/s", f"{m['init_s']:.2f} s"
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    missing = image_missing()
    if missing:
        print(f"bench.threads: skipped, {missing}")
        return
    results = run(args.repetitions)
    out = RESULTS / f"{datetime.now(UTC).date().isoformat()}-threads.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
