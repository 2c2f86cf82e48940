"""Init by backend (`make bench`; alone `python -m bench.init`): torch with and without the import
deferrals, and ONNX Runtime.

Fresh containers of the image as Lambda runs them, at 1 CPU (1,769 MB) and 2 CPUs (3,538 MB), the
backends alternating: container start to the runtime's first `next`, and the phases the function logs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.plots import PHASES, plot_init
from bench.report import markdown_row
from bench.run import LOGS, RESULTS
from helpers import load_event, log_records
from lambda_container import IMAGE, Conditions, image_missing, lambda_container

SETTINGS = {"1 CPU": Conditions(memory_mb=1769, cpus="0"), "2 CPUs": Conditions(memory_mb=3538, cpus="0-1")}
BACKENDS = {
    "torch": {"DEFER_IMPORTS": "true"},
    "torch, no deferral": {"DEFER_IMPORTS": "false"},
    "onnx": {"BACKEND": "onnx"},
}


def boot(conditions: Conditions, env: dict[str, str], label: str) -> dict[str, Any]:
    log_path = LOGS / "init" / f"{label}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with lambda_container(log_path, conditions, env) as container:
        assert container.invoke(load_event("warmup_schedule_input")).ok
        init_s = container.init_seconds()
        record = next(r for r in log_records(container.log()) if r.get("message") == "init complete")
    return {"init_s": round(init_s, 3), "phases_ms": record["timings_ms"]}


def run(repetitions: int, model_dir: Path | None = None, model_id: str = "") -> dict[str, Any]:
    """Alternating boots; with `model_dir` (holding onnx/model.onnx too), that model, mounted read-only."""
    model_env = {"MODEL_PATH": "/opt/other-model", "MODEL_ID": model_id} if model_dir else {}
    mounts = (f"{model_dir.resolve()}:/opt/other-model:ro",) if model_dir else ()
    runs: dict[str, list[dict[str, Any]]] = {}
    for repetition in range(repetitions):
        for setting, base_conditions in SETTINGS.items():
            conditions = replace(base_conditions, mounts=mounts)
            for backend, backend_env in BACKENDS.items():
                env = {**backend_env, **model_env}
                key = f"{setting}: {backend}"
                result = boot(
                    conditions, env, f"{key.replace(' ', '_').replace(',', '').replace(':', '')}-{repetition}"
                )
                runs.setdefault(key, []).append(result)
                print(f"  {key}: init {result['init_s']:.2f} s", file=sys.stderr, flush=True)
    medians = {
        key: {
            "init_s": round(statistics.median(r["init_s"] for r in results), 2),
            **{
                f"{phase}_ms": round(statistics.median(r["phases_ms"].get(phase, 0.0) for r in results))
                for phase in PHASES
            },
        }
        for key, results in runs.items()
    }
    ratios = {
        f"{setting}: {backend} / torch, no deferral": round(
            medians[f"{setting}: {backend}"]["init_s"] / medians[f"{setting}: torch, no deferral"]["init_s"],
            2,
        )
        for setting in SETTINGS
        for backend in ("torch", "onnx")
    }
    model = model_id or "the image's"
    return {
        "image": IMAGE,
        "model": model,
        "repetitions": repetitions,
        "medians": medians,
        "ratios": ratios,
        "runs": runs,
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        markdown_row("CPUs: backend", "Init", "Imports", "Load", "Warm-up + throughput"),
        markdown_row("---", *["---:"] * 4),
    ]
    for key, m in results["medians"].items():
        warm = m["warmup_ms"] + m["throughput_ms"]
        lines.append(
            markdown_row(
                key, f"{m['init_s']:.2f} s", f"{m['imports_ms']} ms", f"{m['load_ms']} ms", f"{warm} ms"
            )
        )
    lines += ["", "Init ratios: " + "; ".join(f"{k} {v}" for k, v in results["ratios"].items())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--model-dir", type=Path, help="another model folder (with onnx/model.onnx)")
    parser.add_argument("--model-id", default="", help="the name that model answers with")
    args = parser.parse_args()
    missing = image_missing()
    if missing:
        print(f"bench.init: skipped, {missing}")
        return
    results = run(args.repetitions, args.model_dir, args.model_id)
    date = datetime.now(UTC).date().isoformat()
    suffix = f"-{args.model_id.rsplit('/', 1)[-1]}" if args.model_dir else ""
    out = RESULTS / f"{date}-init{suffix}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    figure = plot_init(results, RESULTS / f"{date}-init{suffix}.png")
    print(table(results))
    print(f"written to {out} and {figure}")


if __name__ == "__main__":
    main()
