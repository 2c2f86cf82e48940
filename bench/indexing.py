"""Indexing throughput: chunks per second through the whole pipeline (S3 fetch over HTTP, extract,
chunk, embed, store in PostgreSQL) beside raw `encode` of the same chunks, in the same process."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import corpus
from embedding_engine.engine import Engine
from embedding_engine.indexing.chunking import chunk_text
from embedding_engine.indexing.fetch import S3Fetcher
from embedding_engine.indexing.pipeline import Indexer
from embedding_engine.indexing.s3_events import ObjectEvent
from embedding_engine.indexing.store import ChunkStore
from embedding_engine.local_db import start_local_postgres

BUCKET = "bench-documents"


def measure_indexing(engine: Engine, *, documents: int, repetitions: int) -> dict[str, Any]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            url = start_local_postgres(Path(folder) / "pgdata", cleanup="delete")
            return _measure(engine, url, documents=documents, repetitions=repetitions)
    finally:
        server.stop()


def _measure(engine: Engine, url: str, *, documents: int, repetitions: int) -> dict[str, Any]:
    import boto3

    embedder = engine.embedder
    texts = corpus(documents)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for index, text in enumerate(texts):
        s3.put_object(Bucket=BUCKET, Key=f"doc-{index}.txt", Body=text.encode(), ContentType="text/plain")
    store = ChunkStore(url, model_id=embedder.model_id, dimensions=embedder.dimensions)
    overlap = engine.settings.chunk_overlap_tokens
    indexer = Indexer(embedder, store, fetcher=S3Fetcher(max_bytes=10**8), overlap_tokens=overlap)
    chunks = [
        chunk.text
        for text in texts
        for chunk in chunk_text(
            text, embedder.tokenizer, max_tokens=embedder.max_seq_length, overlap_tokens=overlap
        )
    ]
    pipeline_rates, encode_rates = [], []
    for repetition in range(1, repetitions + 1):
        events = [
            ObjectEvent(BUCKET, f"doc-{i}.txt", "created", sequencer=f"{repetition:x}")
            for i in range(documents)
        ]
        started = time.perf_counter()
        indexed = sum(indexer.handle(event).chunks for event in events)
        pipeline_rates.append(indexed / (time.perf_counter() - started))
        assert indexed == len(chunks), (indexed, len(chunks))
        started = time.perf_counter()
        embedder.model.encode(chunks, batch_size=embedder.batch_size, convert_to_numpy=True)
        encode_rates.append(len(chunks) / (time.perf_counter() - started))
    store.close()
    pipeline, encode = statistics.median(pipeline_rates), statistics.median(encode_rates)
    return {
        "documents": documents,
        "chunks": len(chunks),
        "repetitions": repetitions,
        "pipeline_chunks_per_s": round(pipeline, 1),
        "encode_chunks_per_s": round(encode, 1),
        "ratio": round(pipeline / encode, 3),
        "pipeline_runs": [round(rate, 1) for rate in pipeline_rates],
        "encode_runs": [round(rate, 1) for rate in encode_rates],
    }
