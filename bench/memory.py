"""`make bench`'s memory section, side by side in one run: the soak (bench/soak.py) under jemalloc (what
the image and `make run` preload), under glibc's malloc (what they used before) and tuned glibc, each
in its own process pinned to its own CPU, as many at a time as there are CPUs; `make run`'s server
under 8 concurrent clients; and one 5.9 MB input, cut before tokenizing (the handler) against
tokenized whole (the old path).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from bench.soak_http import soak_http

REPO = Path(__file__).resolve().parents[1]
GROWTH_FROM = 1000  # growth is measured from this request on: the first ones fill caches and pools
GROWTH_MAX_MB = 50.0


# glibc's malloc with a fixed mmap threshold (large blocks always mmapped, so freed ones go back to the
# system): the alternative to jemalloc the issue measured, at a cost in speed.
GLIBC_TUNED = {"LD_PRELOAD": "", "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def allocators() -> dict[str, dict[str, str]]:
    """Environment changes per allocator: jemalloc as `make bench` preloads it (LD_PRELOAD and
    MALLOC_CONF, as the image and `make run` do), glibc as it comes, and tuned glibc."""
    jemalloc = {name: os.environ.get(name, "") for name in ("LD_PRELOAD", "MALLOC_CONF")}
    chosen = {"jemalloc": jemalloc} if "jemalloc" in jemalloc["LD_PRELOAD"] else {}
    return {**chosen, "glibc": {"LD_PRELOAD": "", "MALLOC_CONF": ""}, "glibc-tuned": GLIBC_TUNED}


class Child(NamedTuple):
    """A running `bench.soak` process and where its result and log go."""

    process: subprocess.Popen[bytes]
    out: Path
    log: Path

    def result(self) -> dict[str, Any]:
        """Its JSON, once it exits; a RuntimeError naming the log if it failed."""
        code = self.process.wait()
        if code != 0:
            raise RuntimeError(f"bench.soak failed ({code}) for {self.out.name}; see {self.log}")
        result: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return result


def _start(args: list[str], env: Mapping[str, str], out: Path, log: Path, *, cpu: int | None = None) -> Child:
    """`bench.soak` with `args` in its own process (pinned to `cpu` when given), writing `out`."""
    command = [sys.executable, "-m", "bench.soak", *args, "--out", str(out)]
    pin = None if cpu is None else partial(os.sched_setaffinity, 0, {cpu})
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=dict(env),
            stdout=sink,
            stderr=sink,
            preexec_fn=pin,
        )
    return Child(process, out, log)


def summarize(soak: dict[str, Any]) -> dict[str, Any]:
    """The figures the issue asks for: RSS at request 1,000 and at the end, the growth between, peak."""
    readings = soak["readings"]
    start = next((r for r in readings if r["requests"] >= GROWTH_FROM), readings[-1])
    end = readings[-1]
    summary = {
        "rss_start_mb": readings[0]["rss_mb"],
        "rss_from": [start["requests"], start["rss_mb"]],  # [request number, MB]
        "rss_end": [end["requests"], end["rss_mb"]],
        "growth_mb": round(end["rss_mb"] - start["rss_mb"], 1),
        "growth_from": start["requests"],
        "peak_mb": max(r["peak_mb"] for r in readings),
        "seconds": end["seconds"],
    }
    probes = [r["query_ms"] for r in readings if "query_ms" in r]
    if probes:
        summary["query_ms_median"] = round(statistics.median(probes), 2)
        summary["query_ms_first_last"] = [probes[0], probes[-1]]
    return summary


def measure_memory(
    env: Mapping[str, str], *, soaks: dict[str, int], every: int, http_requests: int, log_dir: Path
) -> dict[str, Any]:
    """For each allocator named in `soaks` (see `allocators`; the ones not found here are left out):
    `make run`'s server under 8 concurrent clients when `http_requests`, and the in-process soak of
    `soaks[name]` requests; then the big input both ways, under the first allocator."""
    found = allocators()
    choices = {name: found[name] for name in soaks if name in found}
    results: dict[str, Any] = {"http_requests": http_requests, "every": every}
    results.update(soak={}, http={}, big_input={})
    for name, change in choices.items():
        if http_requests:
            print(f"  memory soak over HTTP: {name}, {http_requests} requests", file=sys.stderr, flush=True)
            http_every = max(1, min(every, http_requests // 4))
            log = log_dir / "http.log"
            http = soak_http({**env, **change}, requests=http_requests, every=http_every, log=log)
            results["http"][name] = {
                **summarize(http),
                **{key: http[key] for key in ("statuses", "readings")},
            }
    # Side by side: as many soaks at once as there are CPUs, each pinned to its own (one vCPU, as a
    # 1,769 MB function has), so the allocators meet the same machine at the same moments.
    cpus = sorted(os.sched_getaffinity(0))
    names = list(choices)
    for wave in (names[first : first + len(cpus)] for first in range(0, len(names), len(cpus))):
        children = {}
        for cpu, name in zip(cpus, wave, strict=False):
            print(f"  memory soak: {name}, {soaks[name]} requests, CPU {cpu}", file=sys.stderr, flush=True)
            arguments = ["--requests", str(soaks[name]), "--every", str(every)]
            change = {**env, **choices[name]}
            out, log = log_dir / f"soak-{name}.json", log_dir / f"soak-{name}.log"
            children[name] = _start(arguments, change, out, log, cpu=cpu)
        for name, child in children.items():
            soak = child.result()
            kept = ("allocator", "requests", "texts", "statuses", "readings")
            results["soak"][name] = {**summarize(soak), **{key: soak[key] for key in kept}}
    first = next(iter(choices.values()))
    for path in ("cut", "whole"):
        print(f"  memory: one 5.9 MB input, {path}", file=sys.stderr, flush=True)
        out = log_dir / f"big-input-{path}.json"
        results["big_input"][path] = _start(
            ["--big-input", path], {**env, **first}, out, log_dir / "big.log"
        ).result()
    return results


def targets(memory: dict[str, Any]) -> dict[str, bool]:
    if "jemalloc" not in memory["soak"]:
        return {}
    name = f"memory growth after request {GROWTH_FROM} <= {GROWTH_MAX_MB:.0f} MB (jemalloc)"
    return {name: memory["soak"]["jemalloc"]["growth_mb"] <= GROWTH_MAX_MB}


def table(memory: dict[str, Any]) -> str:
    """The memory section of a model's report, in Markdown."""
    from bench.report import markdown_row

    http = f"; {memory['http_requests']:,} to `make run`'s server from 8 clients" if memory["http"] else ""
    lines = [
        f"Memory soak: varied requests in-process through `lambda_handler`{http}; RSS every "
        f"{memory['every']}; one process per allocator, side by side, each pinned to its own CPU.",
        "",
        markdown_row(
            "Soak", "RSS at start", "RSS at request 1,000 → end", "Growth", "Peak", "Query probe", "Time"
        ),
        markdown_row(*["---"] * 7),
    ]
    for kind, runs in (("in-process", memory["soak"]), ("HTTP, 8 clients", memory["http"])):
        for name, run in runs.items():
            (at_start, rss_start), (at_end, rss_end) = run["rss_from"], run["rss_end"]
            growth = f"{run['growth_mb']:+.0f} MB"
            if name == "jemalloc":
                growth += f" {'✅' if run['growth_mb'] <= GROWTH_MAX_MB else '❌'} (≤ {GROWTH_MAX_MB:.0f})"
            probe = "—"
            if "query_ms_median" in run:
                first, last = run["query_ms_first_last"]
                probe = f"median {run['query_ms_median']:.1f} ms (first {first:.1f}, last {last:.1f})"
            lines.append(
                markdown_row(
                    f"{kind}, {name}" + (f" ({run['requests']:,} requests)" if "requests" in run else ""),
                    f"{run['rss_start_mb']:.0f} MB",
                    f"{rss_start:.0f} MB (#{at_start}) → {rss_end:.0f} MB (#{at_end})",
                    growth,
                    f"{run['peak_mb']:.0f} MB",
                    probe,
                    f"{run['seconds']:.0f} s",
                )
            )
    big = memory["big_input"]
    if big:
        lines += [
            "",
            markdown_row("One 5.9 MB input", "RSS before", "Peak", "RSS after"),
            markdown_row(*["---"] * 4),
        ]
        for path, label in (("cut", "handler: cut before tokenizing"), ("whole", "tokenized whole (before)")):
            row = big[path]
            lines.append(
                markdown_row(
                    label,
                    f"{row['rss_before_mb']:.0f} MB",
                    f"{row['peak_mb']:.0f} MB",
                    f"{row['rss_after_mb']:.0f} MB",
                )
            )
    return "\n".join(lines)


def _first(runs: dict[str, Any]) -> dict[str, Any]:
    return next(iter(runs.values()))
