"""Search quality on BEIR SciFact (`make eval`; alone `python -m bench.eval`): the 5,183 abstracts
indexed through the CLI's pipeline (`python -m embedding_engine index`) into a real PostgreSQL, then
the 300 test queries through `/search`'s code for each mode, as documents (k = 100).

Prints nDCG@10, recall@10, recall@100 and MRR@10 beside the published figures, the indexing rate
beside bare `encode` of the same chunks, and search latency (p50, p95); writes
bench/results/<date>-eval-scifact-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import unquote, urlparse

from bench.report import markdown_row
from bench.retrieval_metrics import evaluate
from embedding_engine.indexing.retrieval import Mode

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DATASET = REPO.parent / "shared" / "datasets" / "scifact"
DOCUMENTS = REPO / ".cache" / "eval" / "scifact-documents"
MODES: tuple[Mode, ...] = get_args(Mode)
# Published nDCG@10 on the SciFact test split (the dataset's SOURCE.md): MTEB for the dense models,
# the BEIR paper (Thakur et al., 2021) for BM25 (Elasticsearch).
PUBLISHED = {
    "sentence-transformers/all-MiniLM-L6-v2": {"ndcg@10": 0.64508, "recall@10": 0.78333},
    "sentence-transformers/all-mpnet-base-v2": {"ndcg@10": 0.6557, "recall@10": 0.79011},
    "BM25 (BEIR paper)": {"ndcg@10": 0.665},
}
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def load(dataset: Path) -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """The corpus, the test queries by id, and their relevance judgements (query -> document -> grade)."""
    with (dataset / "corpus.jsonl").open() as lines:
        corpus = [json.loads(line) for line in lines]
    with (dataset / "queries.jsonl").open() as lines:
        queries = {query["_id"]: query["text"] for query in map(json.loads, lines)}
    qrels: dict[str, dict[str, int]] = {}
    for line in (dataset / "qrels" / "test.tsv").read_text().splitlines()[1:]:  # CRLF: splitlines
        query_id, document_id, grade = line.split("\t")
        qrels.setdefault(query_id, {})[document_id] = int(grade)
    return corpus, {query_id: queries[query_id] for query_id in qrels}, qrels


def write_documents(corpus: list[dict[str, str]], folder: Path) -> None:
    """Each abstract as `<id>.txt`: its title, a blank line, its text (as a user would index them).
    Files already written are left alone, so their mtimes, and so a kept index, stay valid."""
    folder.mkdir(parents=True, exist_ok=True)
    for document in corpus:
        path = folder / f"{document['_id']}.txt"
        if not path.exists():
            path.write_text(f"{document['title']}\n\n{document['text']}\n")


def document_id(source: str) -> str:
    return Path(unquote(urlparse(source).path)).stem


def run(dataset: Path, pgdata: Path, *, compare_encode: bool = True) -> dict[str, Any]:
    from embedding_engine.cli import index_paths
    from embedding_engine.engine import Engine
    from embedding_engine.local_db import start_local_postgres
    from embedding_engine.settings import Settings

    corpus, queries, qrels = load(dataset)
    write_documents(corpus, DOCUMENTS)
    settings = Settings.from_env()
    url = start_local_postgres(pgdata, cleanup="delete")
    settings = replace(settings, database_url=url)
    engine = Engine.start(settings, init_started=time.perf_counter())
    assert engine.indexer is not None and engine.store is not None
    started = time.perf_counter()
    index_paths(engine.indexer, [DOCUMENTS])
    indexing = {"seconds": round(time.perf_counter() - started, 1)}
    indexing.update(bare_encode(engine, url, timed=compare_encode))
    results = {
        "model": engine.embedder.model_id,
        "dataset": str(dataset),
        "queries": len(queries),
        "documents": len(corpus),
        "indexing": indexing,
        "modes": {mode: search_all(engine, queries, qrels, mode) for mode in MODES},
        "published": PUBLISHED,
    }
    engine.store.close()
    return results


def bare_encode(engine: Any, url: str, *, timed: bool) -> dict[str, Any]:
    """The indexed chunks' count and, when `timed`, how long bare `encode` takes to embed them
    (batches of ENCODE_BATCH_SIZE)."""
    import psycopg

    from embedding_engine.indexing.schema import index_url

    with psycopg.connect(index_url(url, engine.embedder.model_id)) as connection:
        texts = [row[0] for row in connection.execute("SELECT text FROM chunks ORDER BY id")]
    if not timed:
        return {"chunks": len(texts)}
    embedder = engine.embedder
    started = time.perf_counter()
    embedder.model.encode(texts, batch_size=embedder.batch_size, convert_to_numpy=True)
    return {"chunks": len(texts), "bare_encode_seconds": round(time.perf_counter() - started, 1)}


def search_all(engine: Any, queries: dict[str, str], qrels: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """Every test query through `/search`'s code as documents: the metrics of k = 100, and the
    latency of k = 100 and of k = 10 (what a RAG application asks for)."""
    from embedding_engine.api.search import SearchRequest, search
    from embedding_engine.deadline import Deadline

    def ask(text: str, k: int) -> list[str]:
        request = SearchRequest(query=text, k=k, mode=mode, group_by="document")
        hits = search(request, engine.embedder, engine.store, deadline=Deadline.never())["hits"]
        return [document_id(hit["source"]) for hit in hits]

    ask("warm-up", 100)
    rankings: dict[str, list[str]] = {}
    latencies: dict[int, list[float]] = {100: [], 10: []}
    for k, times in latencies.items():
        for query_id, text in queries.items():
            started = time.perf_counter()
            ranking = ask(text, k)
            times.append((time.perf_counter() - started) * 1000)
            rankings.setdefault(query_id, ranking)  # k = 100's
    scores = evaluate(rankings, qrels)
    return {
        **{metric: round(value, 4) for metric, value in scores.items()},
        "latency_ms": {f"k={k}": percentiles(times) for k, times in latencies.items()},
        "short_rankings": sum(len(ranking) < 100 for ranking in rankings.values()),
    }


def percentiles(times: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(times), 1),
        "p95": round(statistics.quantiles(times, n=20)[-1], 1),
    }


def table(results: dict[str, Any]) -> str:
    model = results["model"]
    lines = [
        f"### BEIR SciFact: {results['documents']:,} documents, {results['queries']} test queries, {model}",
        "",
        markdown_row("Mode", *METRICS, "ms k=10 (p50 / p95)", "ms k=100 (p50 / p95)"),
        markdown_row(*["---"] * (len(METRICS) + 3)),
    ]
    for mode, scores in results["modes"].items():
        latency = [scores["latency_ms"][k] for k in ("k=10", "k=100")]
        cells = [f"{scores[metric]:.3f}" for metric in METRICS]
        lines.append(markdown_row(mode, *cells, *(f"{t['p50']} / {t['p95']}" for t in latency)))
    for name, published in PUBLISHED.items():
        if name == model or name.startswith("BM25"):
            cells = [f"{published[m]:.3f}" if m in published else "—" for m in METRICS]
            lines.append(markdown_row(f"published: {name}", *cells, "", ""))
    indexing = results["indexing"]
    rate = indexing["chunks"] / indexing["seconds"]
    summary = f"Indexing: {indexing['chunks']:,} chunks in {indexing['seconds']} s, {rate:.1f} chunks/s"
    if "bare_encode_seconds" in indexing:
        bare = indexing["chunks"] / indexing["bare_encode_seconds"]
        summary += f"; bare encode of the same chunks {bare:.1f} chunks/s: ratio {rate / bare:.2f}"
    lines += ["", summary + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument(
        "--model-dir", type=Path, help="a model folder (MODEL_PATH); default: the bundled one"
    )
    parser.add_argument("--model-id", default="", help="its id (MODEL_ID), for the published figures")
    parser.add_argument(
        "--no-encode-comparison", action="store_true", help="skip timing bare encode (as long as indexing)"
    )
    args = parser.parse_args()
    from embedding_engine.cli import exit_on_sigterm

    exit_on_sigterm()  # so the PostgreSQL it starts stops with it when it is killed
    if args.model_dir:
        os.environ.update(MODEL_PATH=str(args.model_dir.resolve()), MODEL_ID=args.model_id)
    # Not a TemporaryDirectory: it would delete the data before the server stops, which orphans it.
    pgdata = Path(tempfile.mkdtemp(prefix="embeddings-eval-")) / "pgdata"  # removed with the server
    results = run(args.dataset, pgdata, compare_encode=not args.no_encode_comparison)
    results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(table(results))
    name = results["model"].rsplit("/", 1)[-1]
    path = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-eval-scifact-{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
