"""Sizing: what a vCPU buys. Lambda allots vCPUs by MemorySize (1,769 MB ≈ 1 vCPU, 3,008 MB = 2), so
the same handler is measured pinned to 1 CPU with 1 torch thread, and on every CPU this machine allows."""

from __future__ import annotations

import os
from typing import Any

from bench.latency import measure_overhead, measure_throughput


def measure_sizing(handler: Any, *, text: str, calls: int, batch_rounds: int) -> dict[str, Any]:
    """One short query's handler latency and batch-32 throughput, per CPU count (medians)."""
    import torch

    allowed = sorted(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    results: dict[str, Any] = {}
    try:
        for count in sorted({1, len(allowed)}):
            os.sched_setaffinity(0, allowed[:count])
            torch.set_num_threads(count)
            query = measure_overhead(handler, text=text, calls=calls)
            batch = measure_throughput(handler, batch_sizes=[32], repetitions={32: batch_rounds})
            results[str(count)] = {
                "query_ms": query["handler_ms"],
                "batch32_inputs_per_s": batch["batches"]["32"]["float_per_s"],
            }
    finally:
        os.sched_setaffinity(0, allowed)
        torch.set_num_threads(threads)
    return results
