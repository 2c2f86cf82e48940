"""The image's own figures (`make image` first), recorded, never asserted: the README's come from here.

Its size by part (`<engine> history`), then fresh containers run as Lambda runs them
(tests/lambda_container.py, 2048 MB), 1 CPU and 2 alternating: init (start -> first `next`), the
"init complete" phases, the first request, the median of the next ones, peak RSS from /health.
Alone: `python -m bench.image [--quick]` or `bench.run --image-only`. Logs: .cache/bench/image/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import markdown_row
from bench.run import LOGS, PLAN, REPO, RESULTS, busy_seconds
from helpers import load_event, log_records
from lambda_container import IMAGE, Conditions, container_command, engine, image_missing, lambda_container

# CPUs -> the container's cpuset and MemorySize: Lambda's share, one vCPU's worth per 1,769 MB.
CPUS = {"1": ("0", 1769), "2": ("0-1", 3538)}
CEILING = 300.0  # seconds: a ceiling on any wait, never an expectation of speed
MB = 1e6  # decimal megabytes, as the engines print image sizes
COLUMNS = ("CPUs", "Init", "Imports", "Load", "First request", "Steady", "First/steady", "Peak RSS")
PARTS = ("base", "dependencies", "model", "engine code", "function code", "set-up", "other")


def layer_part(created_by: str, deps_seen: bool) -> str:
    """The Dockerfile step a layer comes from, by its CreatedBy text (podman's or docker's): every
    layer before the first copy into /opt/python (`COPY --from=deps`) is the base's."""
    if not deps_seen:
        return "dependencies" if "/opt/python" in created_by else "base"
    for needle, part in (
        ("compileall", "set-up"),  # the engine's bytecode, jemalloc if missing, the entry point
        ("/opt/python", "engine code"),  # `COPY layer/python/`, then the RUN that trims it
        ("/opt/model", "model"),
        ("/var/task", "function code"),
    ):
        if needle in created_by:
            return part
    return "other"


def image_size() -> dict[str, Any]:
    """The image's non-empty layers, oldest first, and their bytes summed by part."""
    if engine() == "podman":  # podman 4.3's templates ignore --human=false: its JSON has bytes
        history = json.loads(container_command("history", "--format", "json", IMAGE))
    else:  # docker: a JSON object a line, sizes in bytes with --human=false
        out = container_command("history", "--no-trunc", "--human=false", "--format", "{{json .}}", IMAGE)
        history = [json.loads(line) for line in out.splitlines() if line.strip()]
    layers: list[dict[str, Any]] = []
    deps_seen = False
    for entry in reversed(history):
        created_by = " ".join(str(entry.get("CreatedBy", "")).split())
        size = int(entry.get("size", entry.get("Size", 0)))
        part = layer_part(created_by, deps_seen)
        deps_seen = deps_seen or part == "dependencies"
        if size:
            layers.append({"part": part, "bytes": size, "created_by": created_by[:160]})
    parts = {part: sum(layer["bytes"] for layer in layers if layer["part"] == part) for part in PARTS}
    return {"parts": parts, "total": sum(parts.values()), "layers": layers}


def boot_once(cpus: str, memory_mb: int, *, steady: int, log_path: Path) -> dict[str, Any]:
    """One fresh container on `cpus`: init, the first request, `steady` more, then /health."""
    event = load_event("apigw_http_v2")
    others = [name for name in container_command("ps", "--format", "{{.Names}}").split() if name]
    busy_before, wall_before = busy_seconds(), time.monotonic()
    with lambda_container(log_path, Conditions(memory_mb=memory_mb, cpus=cpus)) as container:
        deadline = time.monotonic() + CEILING
        while container.api.first_next_at is None:  # timed by the Runtime API itself, not this loop
            if container.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"CPUs {cpus}: no init (exit {container.process.poll()}); log: {log_path}")
            time.sleep(0.02)
        latencies = []
        for _ in range(steady + 1):
            before = time.perf_counter()
            result = container.invoke(event)
            latencies.append((time.perf_counter() - before) * 1000)
            if not result.ok or result.json().get("statusCode") != 200:
                raise RuntimeError(f"request failed: {result.body[:300]!r}; log: {log_path}")
        health = json.loads(container.invoke(load_event("apigw_http_v2_health")).json()["body"])
        stopping = time.monotonic()
        exit_code = container.stop()
        stop_s = time.monotonic() - stopping
    busy_share = (busy_seconds() - busy_before) / ((time.monotonic() - wall_before) * (os.cpu_count() or 1))
    init = next((r for r in log_records(container.log()) if r.get("message") == "init complete"), {})
    first, steady_ms = latencies[0], statistics.median(latencies[1:])
    return {
        "init_s": round(container.init_seconds(), 2),
        "phases_ms": init.get("timings_ms", {}),
        "load_strategy": init.get("load_strategy"),
        "first_ms": round(first, 1),
        "steady_ms": round(steady_ms, 2),
        "first_over_steady": round(first / steady_ms, 2),
        "rss_init_mb": init.get("memory", {}).get("peak_mb"),
        "peak_rss_mb": health["memory"]["peak_mb"],
        "allocator": health["memory"].get("allocator"),
        "torch_threads": health.get("torch_threads"),
        "stop_s": round(stop_s, 2),
        "exit_code": exit_code,
        # Noise: the machine's busy CPU share meanwhile (this container's included), other containers.
        "machine_busy_share": round(busy_share, 2),
        "other_containers": others,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repetitions (the ratio: the median of each container's own), and the raw runs."""
    keys = ("init_s", "first_ms", "steady_ms", "first_over_steady", "rss_init_mb", "peak_rss_mb", "stop_s")
    summary: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs if run[key] is not None), 2)
        for key in keys
        if any(run[key] is not None for run in runs)
    }
    phases = sorted({name for run in runs for name in run["phases_ms"]})
    summary["phases_ms"] = {
        name: round(statistics.median(run["phases_ms"][name] for run in runs if name in run["phases_ms"]), 1)
        for name in phases
    }
    return {**summary, "runs": runs}


def measure_boots(*, repetitions: int, steady: int, log_dir: Path) -> dict[str, Any]:
    """`repetitions` fresh containers per CPU setting, the settings alternating."""
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in CPUS}
    for repetition in range(1, repetitions + 1):
        for label, (cpuset, memory_mb) in CPUS.items():
            log_path = log_dir / f"cpus{label}-{repetition}.log"
            run = boot_once(cpuset, memory_mb, steady=steady, log_path=log_path)
            runs[label].append(run)
            print(
                f"  image {label} CPU {repetition}/{repetitions}: init {run['init_s']:.1f} s, first "
                f"{run['first_ms']:.0f} ms, steady {run['steady_ms']:.1f} ms, "
                f"peak RSS {run['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
    summaries = {label: summarize(label_runs) for label, label_runs in runs.items()}
    memory = {label: memory_mb for label, (_, memory_mb) in CPUS.items()}
    return {"memory_mb": memory, "repetitions": repetitions, "steady_requests": steady, "cpus": summaries}


def megabytes(size: int) -> str:
    return f"{size / MB:,.1f} MB" if size >= MB / 10 else f"{size / 1e3:,.1f} kB"


def table(results: dict[str, Any]) -> str:
    """The image's figures as Markdown: size by part, then medians per CPU setting."""
    size, boot = results["size"], results["boot"]
    lines = [
        f"### Image {results['image']} ({results['engine']}){' — quick run' if results['quick'] else ''}",
        "",
        markdown_row("Part", "Size"),
        markdown_row("---", "---:"),
        *(markdown_row(part, megabytes(size["parts"][part])) for part in PARTS if size["parts"][part]),
        markdown_row("**total**", f"**{megabytes(size['total'])}**"),
        "",
        f"Fresh containers (1 CPU at 1,769 MB, 2 at 3,538 MB), medians of {boot['repetitions']} per setting "
        f"(alternating); steady: the median of {boot['steady_requests']} requests after the first.",
        "",
        markdown_row(*COLUMNS),
        markdown_row(*["---"] + ["---:"] * (len(COLUMNS) - 1)),
    ]
    for label, cpus in boot["cpus"].items():
        phases = cpus["phases_ms"]
        lines.append(
            markdown_row(
                label,
                f"{cpus['init_s']:.2f} s",
                f"{phases.get('imports', float('nan')):.0f} ms",
                f"{phases.get('load', float('nan')):.0f} ms",
                f"{cpus['first_ms']:.0f} ms",
                f"{cpus['steady_ms']:.1f} ms",
                f"{cpus['first_over_steady']:.2f}",
                f"{cpus['peak_rss_mb']:.0f} MB",
            )
        )
    return "\n".join(lines)


def image_report(quick: bool, date: str) -> tuple[str, Path | None, bool]:
    """Measure the image and write bench/results/<date>-image[-quick].json: (Markdown, the file,
    failed). Without an engine or the image: one line saying so, no file, not a failure."""
    missing = image_missing()
    if missing:
        return f"image: skipped, {missing}", None, False
    identity = container_command("image", "inspect", "--format", "{{.Id}}|{{.Created}}", IMAGE)
    plan = PLAN["quick" if quick else "full"]
    started, load_before = time.perf_counter(), round(os.getloadavg()[0], 2)
    print(f"image {IMAGE}: measuring (logs in {(LOGS / 'image').relative_to(REPO)}/)", file=sys.stderr)
    try:
        size = image_size()
        boot = measure_boots(repetitions=plan["image_boot"], steady=plan["steady"], log_dir=LOGS / "image")
    except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as error:
        return f"image: the measurement failed: {error}", None, True
    image_id, _, created = identity.strip().partition("|")
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "image": IMAGE,
        "image_id": image_id,
        "image_created": created,
        "engine": engine(),
        "engine_version": container_command("version", "--format", "{{.Client.Version}}").strip(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m_at_start": load_before,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "size": size,
        "boot": boot,
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{date}-image{'-quick' if quick else ''}.json"  # never over a full run
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return table(results), out, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer containers")
    args = parser.parse_args()
    text, out, failed = image_report(args.quick, datetime.now(UTC).date().isoformat())
    print(text)
    if out is not None:
        print(f"written to {out.relative_to(REPO)}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
