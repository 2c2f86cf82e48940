"""Init and first-request latency, measured the way Lambda runs the image.

Each repetition starts `python -m awslambdaric <handler>` in its own process (cwd `function/`, the
layer on PYTHONPATH, as in the image) against the tests' local Lambda Runtime API, and times:
process start -> the runtime's first `GET invocation/next` (init is over); the first invocation of a
short query (API Gateway v2 event -> Mangum -> app -> model -> response, delivered by the Runtime
API); then the median of the next invocations. Peak RSS is VmHWM from /proc/<pid>/status, read at
the first `next` and after the last request. The eager design (`handler`) and the lazy one
(`bench.lazy_handler`) alternate, so the machine's noise falls on both alike.

`tests/runtime_api.py` is imported, not copied (see `bench/__init__.py`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embedding_engine.memory import resident_mb
from runtime_api import FUNCTION_DIR, LAYER_DIR, RuntimeApi, lambda_environment

REPO = Path(__file__).resolve().parents[1]
EVENT_PATH = REPO / "tests" / "events" / "apigw_http_v2.json"

DESIGNS = {"eager": "handler.lambda_handler", "lazy": "bench.lazy_handler.lambda_handler"}
CEILING = 300.0  # seconds: a ceiling on any wait, never an expectation of speed


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MB."""
    peak = resident_mb(pid).get("peak_mb")
    if peak is None:
        raise RuntimeError(f"no VmHWM for process {pid}")
    return peak


def init_record(log: str) -> dict[str, Any]:
    """The function's JSON "init complete" log line (Powertools), or {} when there is none yet."""
    for line in log.splitlines():
        if line.startswith("{") and '"init complete"' in line:
            record: dict[str, Any] = json.loads(line)
            return record
    return {}


def boot_once(design: str, model_env: Mapping[str, str], *, steady: int, log_path: Path) -> dict[str, Any]:
    """One cold process of `design`: init, the first request, then `steady` more."""
    event = json.loads(EVENT_PATH.read_text(encoding="utf-8"))
    pid: list[int] = []
    at_init: dict[str, float] = {}
    init_over = threading.Event()

    def on_first_next() -> None:  # in the Runtime API's thread, before any event is delivered
        at_init["rss_mb"] = vm_hwm_mb(pid[0])
        init_over.set()

    with log_path.open("wb") as log_file, RuntimeApi(on_first_next=on_first_next) as api:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", DESIGNS[design]],
            cwd=FUNCTION_DIR,
            env=lambda_environment(
                api.address, handler=DESIGNS[design], pythonpath=(LAYER_DIR, REPO), **model_env
            ),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        pid.append(process.pid)  # long before the interpreter can reach its first `next`
        watcher = threading.Thread(
            target=lambda: api.abort(f"exited with code {process.wait()}; log: {log_path}"), daemon=True
        )
        watcher.start()
        try:
            deadline = time.monotonic() + CEILING
            while not init_over.wait(0.05):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{design}: no init (code {process.poll()}); log: {log_path}")
            assert api.first_next_at is not None
            latencies = []
            for _ in range(steady + 1):
                before = time.perf_counter()
                result = api.invoke(event, timeout=CEILING)
                latencies.append((time.perf_counter() - before) * 1000)
                if not result.ok or result.json().get("statusCode") != 200:
                    raise RuntimeError(f"{design}: request failed: {result.body[:300]!r}; log: {log_path}")
            rss_end = vm_hwm_mb(process.pid)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=CEILING)
            watcher.join(timeout=CEILING)
    record = init_record(log_path.read_text(encoding="utf-8", errors="replace"))
    first, rest = latencies[0], latencies[1:]
    steady_ms = statistics.median(rest)
    return {
        "init_ms": round((api.first_next_at - started) * 1000, 1),
        "phases_ms": record.get("timings_ms", {}),
        "first_ms": round(first, 2),
        "steady_ms": round(steady_ms, 2),
        "first_over_steady": round(first / steady_ms, 2),
        "rss_init_mb": at_init["rss_mb"],
        "rss_end_mb": rss_end,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repetitions (the ratio is the median of each process's own first/steady)."""
    phases = sorted({name for run in runs for name in run["phases_ms"]})
    keys = ("init_ms", "first_ms", "steady_ms", "first_over_steady", "rss_init_mb", "rss_end_mb")
    summary: dict[str, Any] = {key: round(statistics.median(run[key] for run in runs), 2) for key in keys}
    summary["phases_ms"] = {
        name: round(statistics.median(run["phases_ms"][name] for run in runs if name in run["phases_ms"]), 1)
        for name in phases
    }
    summary["runs"] = runs
    return summary


def measure_boot(
    model_env: Mapping[str, str], *, repetitions: int, steady: int, log_dir: Path
) -> dict[str, Any]:
    """Both designs, alternating, `repetitions` cold processes each."""
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {design: [] for design in DESIGNS}
    for repetition in range(1, repetitions + 1):
        for design in DESIGNS:
            run = boot_once(design, model_env, steady=steady, log_path=log_dir / f"{design}-{repetition}.log")
            runs[design].append(run)
            print(
                f"  boot {design} {repetition}/{repetitions}: init {run['init_ms']:.0f} ms, first "
                f"{run['first_ms']:.0f} ms, steady {run['steady_ms']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    result: dict[str, Any] = {"repetitions": repetitions, "steady_requests": steady}
    result.update({design: summarize(design_runs) for design, design_runs in runs.items()})
    return result
