"""`make bench`: one command, one run, one machine. Prints a Markdown table per model, writes
bench/results/<date>-<model>.json.

Each model is measured in its own subprocess (`--child`), so that one process holds one model:
all-MiniLM-L6-v2 always; all-mpnet-base-v2 too (not with `--quick`) from MODEL_PATH when set, else
from .cache/models/ (fetched by ../shared/models/fetch-mpnet.sh when missing). The child first boots
the function in fresh `awslambdaric` processes (bench/boot.py), then imports `handler` (Lambda's
init) and measures in-process (bench/latency.py, bench/indexing.py). Its stdout, the function's own
JSON logs and EMF metrics at Powertools' Lambda defaults, goes to .cache/bench/<model>/child.log.
Last, the image's own figures when `make image` has built it (bench/image.py; alone: --image-only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.memory import measure_memory
from bench.memory import targets as memory_targets
from bench.plots import plot_throughput
from bench.report import table, targets

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LOGS = REPO / ".cache" / "bench"
MPNET_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_DIR = REPO / ".cache" / "models" / "all-mpnet-base-v2"
FETCH_MPNET = REPO.parent / "shared" / "models" / "fetch-mpnet.sh"
# Repetitions (full, quick). Throughput: rounds per batch size, after one warm-up round.
PLAN: dict[str, dict[str, Any]] = {
    "full": {
        "boot": 5,
        "image_boot": 5,  # fresh containers of the image per CPU setting (bench/image.py)
        "steady": 50,
        "overhead": 200,
        "throughput": {1: 40, 8: 20, 32: 10, 128: 5},
        "documents": 40,
        "indexing": 5,
        # Memory soak requests by allocator: the default model (and make run's server: "http"), then
        # any other (slower: seconds a request on one CPU for all-mpnet-base-v2) model, for its
        # peak RSS, which it reaches within the first hundred requests.
        "soak": {
            "default": {"jemalloc": 10_000, "glibc": 10_000, "glibc-tuned": 2_000},
            "other": {"jemalloc": 500, "glibc": 500},
            "http": 2_000,
        },
    },
    "quick": {
        "boot": 2,
        "image_boot": 2,
        "steady": 50,
        "overhead": 50,
        "throughput": {1: 10, 8: 5, 32: 3, 128: 2},
        "documents": 10,
        "indexing": 2,
        "soak": {"default": {"jemalloc": 1_000, "glibc": 1_000}, "other": {"jemalloc": 500}, "http": 200},
    },
}
SOAK_EVERY = 500


def machine() -> dict[str, Any]:
    """Where the figures come from (call after the model is loaded: torch threads are set at init)."""
    import torch

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "platform": platform.platform(),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat, user to steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds used by this process and its waited-for descendants."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def child(out: Path, quick: bool) -> None:
    """Measure the model named by this process's MODEL_PATH / MODEL_ID; write `out`."""
    from bench.boot import measure_boot

    plan = PLAN["quick" if quick else "full"]
    started = time.perf_counter()
    model_env = {name: os.environ[name] for name in ("MODEL_PATH", "MODEL_ID") if name in os.environ}
    load_before = round(os.getloadavg()[0], 2)
    busy_before, own_before = busy_seconds(), own_seconds()
    boot = measure_boot(model_env, repetitions=plan["boot"], steady=plan["steady"], log_dir=out_logs(out))

    sys.path.insert(0, str(REPO / "function"))  # LAMBDA_TASK_ROOT: `handler` and `app`
    import handler  # Lambda's init: load, verify and warm the model
    from bench.budget import measure_budget
    from bench.indexing import measure_indexing
    from bench.latency import fixture_query, measure_overhead, measure_throughput
    from bench.sizing import measure_sizing

    progress("overhead")
    overhead = measure_overhead(handler, text=fixture_query(), calls=plan["overhead"])
    progress("throughput")
    sizes = sorted(plan["throughput"])
    throughput = measure_throughput(handler, batch_sizes=sizes, repetitions=plan["throughput"])
    progress("sizing")
    sizing = measure_sizing(
        handler, text=fixture_query(), calls=plan["overhead"] // 2, batch_rounds=plan["throughput"][32]
    )
    progress("indexing")
    indexing = measure_indexing(handler.engine, documents=plan["documents"], repetitions=plan["indexing"])
    progress("budget")
    budget = measure_budget(handler)
    seconds = time.perf_counter() - started
    others = busy_seconds() - busy_before - (own_seconds() - own_before)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "model": handler.engine.embedder.model_id,
        "dimensions": handler.engine.embedder.dimensions,
        "machine": {
            **machine(),
            "load_average_1m_at_start": load_before,
            # CPU used by other processes meanwhile, as a share of all CPUs: the run's noise.
            "other_processes_cpu_share": round(max(others, 0.0) / (seconds * (os.cpu_count() or 1)), 3),
        },
        "boot": boot,
        "overhead": overhead,
        "throughput": throughput,
        "sizing": sizing,
        "indexing": indexing,
        "budget": budget,
        "seconds": round(seconds, 1),
    }
    results["targets"] = targets(results)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def out_logs(out: Path) -> Path:
    return LOGS / out.stem


def progress(step: str) -> None:
    print(f"  {step}", file=sys.stderr, flush=True)


def mpnet_env() -> tuple[dict[str, str] | None, str]:
    """The second model's environment, or None and why it is not measured."""
    if os.environ.get("MODEL_PATH"):
        path = os.environ["MODEL_PATH"]
        return {"MODEL_PATH": path, "MODEL_ID": os.environ.get("MODEL_ID") or Path(path).name}, ""
    if not (MPNET_DIR / "modules.json").is_file():
        if not FETCH_MPNET.is_file():
            return None, f"not measured: {FETCH_MPNET} is missing and MODEL_PATH is not set"
        print(f"fetching all-mpnet-base-v2 into {MPNET_DIR} ...", file=sys.stderr, flush=True)
        fetched = subprocess.run(
            ["bash", str(FETCH_MPNET), str(MPNET_DIR)], cwd=REPO, capture_output=True, text=True, check=False
        )
        if fetched.returncode != 0 or not (MPNET_DIR / "modules.json").is_file():
            reason = (fetched.stderr or fetched.stdout).strip().splitlines()[-1:] or ["no output"]
            return None, f"not measured: fetch-mpnet.sh failed ({fetched.returncode}): {reason[0][:200]}"
    return {"MODEL_PATH": str(MPNET_DIR), "MODEL_ID": MPNET_ID}, ""


def child_environment(model_env: dict[str, str]) -> dict[str, str]:
    """The bench's environment for one model, with Powertools at its Lambda defaults."""
    dropped = ("MODEL_PATH", "MODEL_ID", "DATABASE_URL", "DATABASE_SECRET_ARN", "POWERTOOLS_METRICS_DISABLED")
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    env.update(model_env, HF_HUB_OFFLINE="1", POWERTOOLS_LOG_LEVEL="INFO")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer repetitions, MiniLM only")
    parser.add_argument("--image-only", action="store_true", help="only the image's figures (bench/image.py)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: one model, JSON to here
    args = parser.parse_args()
    if args.child:
        child(args.child, args.quick)
        return
    date = datetime.now(UTC).date().isoformat()
    models: list[tuple[str, dict[str, str] | None, str]] = []
    if not args.image_only:
        models.append(("all-MiniLM-L6-v2", {}, ""))
        if not args.quick:
            models.append(("all-mpnet-base-v2", *mpnet_env()))
    RESULTS.mkdir(exist_ok=True)
    reports, written, failed = [], [], False
    for name, model_env, skipped in models:
        if model_env is None:
            reports.append({"model": name, "skipped": skipped})
            continue
        slug = Path(model_env.get("MODEL_ID", name)).name
        out = RESULTS / f"{date}-{slug}{'-quick' if args.quick else ''}.json"  # never over a full run
        out_logs(out).mkdir(parents=True, exist_ok=True)
        print(f"{slug}: measuring (logs in {out_logs(out).relative_to(REPO)}/)", file=sys.stderr, flush=True)
        with (out_logs(out) / "child.log").open("wb") as log:
            command = [sys.executable, "-m", "bench.run", "--child", str(out), *(["--quick"] * args.quick)]
            code = subprocess.run(command, cwd=REPO, env=child_environment(model_env), stdout=log).returncode
        if code != 0:
            failed = True
            reports.append({"model": slug, "skipped": f"the measurement failed (exit {code}); see its log"})
            continue
        report = json.loads(out.read_text(encoding="utf-8"))
        soak = PLAN["quick" if args.quick else "full"]["soak"]
        report["memory"] = measure_memory(
            child_environment(model_env),
            soaks=soak["other" if model_env else "default"],
            http_requests=0 if model_env else soak["http"],
            every=SOAK_EVERY,
            log_dir=out_logs(out),
        )
        report["targets"].update(memory_targets(report["memory"]))
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        reports.append(report)
        written.append(out)
    from bench.image import image_report  # here: bench.image imports this module

    image_text, image_out, image_failed = image_report(args.quick, date)
    failed = failed or image_failed
    written += [image_out] if image_out else []
    print("\n\n".join([*(table(report) for report in reports), image_text]))
    plot = plot_throughput([r for r in reports if "throughput" in r], RESULTS / f"{date}-throughput.png")
    for path in [*written, *([plot] if plot else [])]:
        print(f"written to {path.relative_to(REPO)}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
