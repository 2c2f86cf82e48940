"""`make bench`'s figures as PNG files under bench/results/, which the README shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PHASES = ("imports", "load", "warmup", "throughput", "http_warmup")


def plot_throughput(reports: list[dict[str, Any]], path: Path) -> Path | None:
    """Inputs/s by batch size, per model and path (bench/run.py's reports)."""
    if not reports:
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    sizes: list[int] = []
    for report in reports:
        batches = report["throughput"]["batches"]
        sizes = [int(size) for size in batches]
        name = report["model"].rsplit("/", 1)[-1]
        for key, style in (("encode_per_s", ":"), ("float_per_s", "-"), ("base64_per_s", "--")):
            label = f"{name} {key.removesuffix('_per_s')}"
            axes.plot(sizes, [batch[key] for batch in batches.values()], style, marker="o", label=label)
    axes.set(xscale="log", xlabel="batch size (inputs)", ylabel="inputs per second")
    axes.set_xticks(sizes, [str(size) for size in sizes])
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_init(results: dict[str, Any], path: Path) -> Path:
    """Init phases (medians, seconds) by CPU count and backend, as stacked bars (bench/init.py)."""
    figure, axes = plt.subplots(figsize=(8, 4))
    labels = list(results["medians"])
    bottoms = [0.0] * len(labels)
    for phase in PHASES:
        heights = [results["medians"][label][f"{phase}_ms"] / 1000 for label in labels]
        axes.barh(labels, heights, left=bottoms, label=phase)
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
    totals = [results["medians"][label]["init_s"] for label in labels]
    axes.scatter(totals, labels, marker="|", s=300, color="black", label="start to first next")
    axes.set(xlabel="seconds", title="Init in the image, by CPUs and backend (medians)")
    axes.invert_yaxis()
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(figure, path)


def plot_backends(results: dict[str, Any], path: Path) -> Path:
    """Latency and inputs/s by batch size, torch against ONNX Runtime (bench/backends.py)."""
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(10, 4))
    for backend, by_batch in results["medians"].items():
        sizes = [int(size) for size in by_batch]
        latency.plot(sizes, [m["ms"] for m in by_batch.values()], marker="o", label=backend)
        throughput.plot(sizes, [m["inputs_per_s"] for m in by_batch.values()], marker="o", label=backend)
    for axes, label in ((latency, "milliseconds per request"), (throughput, "inputs per second")):
        axes.set(xscale="log", xlabel="batch size (inputs)", ylabel=label)
        axes.set_xticks(sizes, [str(size) for size in sizes])
        axes.legend(fontsize="small")
    latency.set_yscale("log")
    figure.suptitle(f"{results['model']} on {results['threads']} threads, through Embedder.embed")
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
