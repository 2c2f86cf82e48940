"""The bench's Markdown table (one per model), its targets, and an optional throughput plot."""

from __future__ import annotations

from typing import Any

from bench.memory import table as memory_table

FIRST_OVER_STEADY_MAX = 1.5
OVERHEAD_MAX = 1.15
THROUGHPUT_MIN = 0.9  # handler / bare encode, for batches of THROUGHPUT_FROM inputs and more
THROUGHPUT_FROM = 32


def targets(results: dict[str, Any]) -> dict[str, bool]:
    """Each target, by name: met or not."""
    met = {
        f"first request <= {FIRST_OVER_STEADY_MAX}x steady (eager)": results["boot"]["eager"][
            "first_over_steady"
        ]
        <= FIRST_OVER_STEADY_MAX,
        f"handler <= {OVERHEAD_MAX}x bare encode": results["overhead"]["ratio"] <= OVERHEAD_MAX,
    }
    if "budget" in results:
        budget = results["budget"]
        fits = budget["request"]["status"] == 200 and budget["share_of_timeout"] < 1
        met["a request of the default token budget finishes within REQUEST_TIMEOUT_SECONDS"] = fits
    for size, batch in results["throughput"]["batches"].items():
        if int(size) >= THROUGHPUT_FROM:
            for fmt in ("float", "base64"):
                met[f"throughput {fmt} batch {size} >= {THROUGHPUT_MIN}x"] = (
                    batch[f"{fmt}_ratio"] >= THROUGHPUT_MIN
                )
    return met


def _mark(ok: bool) -> str:
    return "✅ pass" if ok else "❌ fail"


def markdown_row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "—"


def table(results: dict[str, Any]) -> str:
    """One model's results as Markdown: median, what it is compared with, ratio, target."""
    if "skipped" in results:
        return f"### {results['model']}\n\n{results['skipped']}"
    boot, eager, lazy = results["boot"], results["boot"]["eager"], results["boot"]["lazy"]
    phases = eager["phases_ms"]
    over, met = results["overhead"], results["targets"]
    mach = results["machine"]
    steady, reps = boot["steady_requests"], boot["repetitions"]
    lines = [
        f"### {results['model']} ({results['dimensions']} dims){' — quick run' if results['quick'] else ''}",
        "",
        f"Machine: {mach['cpu']}, {mach['cpus_allowed']}/{mach['cpus']} CPUs, torch {mach['torch']} "
        f"with {mach['torch_threads']} threads, Python {mach['python']}, {mach['platform']}; "
        f"load average {mach['load_average_1m_at_start']} at start, {mach['load_average_1m']} at end; "
        f"other processes used {mach['other_processes_cpu_share']:.0%} of the CPUs meanwhile. "
        f"{results['when']}, {results['seconds']:.0f} s.",
        "",
        "| Measure | Median | Beside it | Ratio | Target |",
        "| --- | --- | --- | --- | --- |",
        markdown_row(
            f"Init: process start → first `next` ({reps} cold processes per design)",
            f"{eager['init_ms']:.0f} ms",
            f"lazy design: {lazy['init_ms']:.0f} ms",
            _ratio(eager["init_ms"], lazy["init_ms"]),
            "—",
        ),
    ]
    for phase in ("imports", "load", "warmup"):
        lines.append(
            markdown_row(
                f'Init phase `{phase}` (the "init complete" log line)',
                f"{phases.get(phase, 0):.0f} ms",
                f"init `total` {phases.get('total', 0):.0f} ms",
                _ratio(phases.get(phase, 0), phases.get("total", 0)),
                "—",
            )
        )
    lines += [
        markdown_row(
            "Init outside `handler` (interpreter + awslambdaric)",
            f"{eager['init_ms'] - phases.get('total', 0):.0f} ms",
            f"init {eager['init_ms']:.0f} ms",
            _ratio(eager["init_ms"] - phases.get("total", 0), eager["init_ms"]),
            "—",
        ),
        markdown_row(
            "Peak RSS (VmHWM) at end of init",
            f"{eager['rss_init_mb']:.0f} MB",
            f"lazy: {lazy['rss_init_mb']:.0f} MB",
            _ratio(eager["rss_init_mb"], lazy["rss_init_mb"]),
            "—",
        ),
        markdown_row(
            f"Peak RSS (VmHWM) after {steady + 1} requests",
            f"{eager['rss_end_mb']:.0f} MB",
            f"lazy: {lazy['rss_end_mb']:.0f} MB",
            _ratio(eager["rss_end_mb"], lazy["rss_end_mb"]),
            "—",
        ),
        markdown_row(
            "First request after init, eager (v2 event → Mangum → app → model, via the Runtime API)",
            f"{eager['first_ms']:.1f} ms",
            f"steady (median of next {steady}): {eager['steady_ms']:.1f} ms",
            f"{eager['first_over_steady']:.2f}",
            f"≤ {FIRST_OVER_STEADY_MAX} {_mark(eager['first_over_steady'] <= FIRST_OVER_STEADY_MAX)}",
        ),
        markdown_row(
            'First request, lazy design (the seed\'s "before": model loaded on first request)',
            f"{lazy['first_ms']:.0f} ms",
            f"steady: {lazy['steady_ms']:.1f} ms",
            f"{lazy['first_over_steady']:.1f}",
            "— (before)",
        ),
        markdown_row(
            "Cold start seen by the caller: init + first request, eager",
            f"{eager['init_ms'] + eager['first_ms']:.0f} ms",
            f"lazy: {lazy['init_ms'] + lazy['first_ms']:.0f} ms",
            _ratio(eager["init_ms"] + eager["first_ms"], lazy["init_ms"] + lazy["first_ms"]),
            "—",
        ),
        markdown_row(
            "Handler overhead, one short query, in-process (Powertools → Mangum → app → JSON)",
            f"{over['handler_ms']:.2f} ms",
            f"bare `model.encode([text])`: {over['encode_ms']:.2f} ms ({over['calls']} each, alternated)",
            f"{over['ratio']:.2f}",
            f"≤ {OVERHEAD_MAX} {_mark(over['ratio'] <= OVERHEAD_MAX)}",
        ),
    ]
    tokens = results["throughput"]["passage_tokens"]
    for size, batch in results["throughput"]["batches"].items():
        for fmt in ("float", "base64"):
            ratio = batch[f"{fmt}_ratio"]
            target = (
                f"≥ {THROUGHPUT_MIN} {_mark(ratio >= THROUGHPUT_MIN)}"
                if int(size) >= THROUGHPUT_FROM
                else "—"
            )
            lines.append(
                markdown_row(
                    f"Throughput, batch {size}, `{fmt}`, inputs/s ({tokens['min']}-{tokens['max']} tokens, "
                    f"{batch['repetitions']} rounds)",
                    f"{batch[f'{fmt}_per_s']:.1f}",
                    f"bare `encode`: {batch['encode_per_s']:.1f}",
                    f"{ratio:.2f}",
                    target,
                )
            )
    sizing = results.get("sizing", {})
    if "1" in sizing and len(sizing) > 1:
        one, most = sizing["1"], sizing[max(sizing, key=int)]
        cpus = max(sizing, key=int)
        lines += [
            markdown_row(
                f"Sizing: one short query, handler ms, 1 CPU (≈1,769 MB) vs {cpus} CPUs (≥3,008 MB)",
                f"{one['query_ms']:.1f} ms",
                f"{cpus} CPUs: {most['query_ms']:.1f} ms",
                f"{one['query_ms'] / most['query_ms']:.2f}",
                "—",
            ),
            markdown_row(
                f"Sizing: batch 32, inputs/s, 1 CPU vs {cpus} CPUs",
                f"{one['batch32_inputs_per_s']:.1f}",
                f"{cpus} CPUs: {most['batch32_inputs_per_s']:.1f}",
                f"{one['batch32_inputs_per_s'] / most['batch32_inputs_per_s']:.2f}",
                "—",
            ),
        ]
    indexing = results["indexing"]
    lines.append(
        markdown_row(
            f"Indexing, chunks/s: S3 fetch → extract → chunk → embed → PostgreSQL ({indexing['documents']} "
            f"docs, {indexing['chunks']} chunks, {indexing['repetitions']} runs)",
            f"{indexing['pipeline_chunks_per_s']}",
            f"bare `encode`: {indexing['encode_chunks_per_s']}",
            f"{indexing['ratio']}",
            "—",
        )
    )
    if "budget" in results:
        budget = results["budget"]
        lines.append(
            markdown_row(
                f"One request of the default token budget ({budget['max_total_tokens']:,} tokens, from "
                f"{budget['tokens_per_second_at_init']:,} tokens/s at init; {budget['request']['inputs']} "
                f"passages, base64, status {budget['request']['status']})",
                f"{budget['seconds']:.1f} s",
                f"REQUEST_TIMEOUT_SECONDS: {budget['request_timeout_seconds']:.0f} s",
                f"{budget['share_of_timeout']:.2f}",
                f"< 1 {_mark(budget['share_of_timeout'] < 1)}",
            )
        )
    if "memory" in results:
        lines += ["", memory_table(results["memory"])]
    passed = sum(met.values())
    lines += ["", f"Targets met: {passed}/{len(met)}."]
    return "\n".join(lines)
