"""Indexing throughput: chunks per second through the whole pipeline as SQS delivers it (batches of
`SQS_BATCH` S3 notifications to `DocumentRecords`: S3 fetch over HTTP, extract, chunk, the batch's
documents embedded together, each stored in its own PostgreSQL transaction) beside bare `encode` of the
same chunks, in the same process. The documents are abstract-sized (one or two chunks each, as BEIR
SciFact's): the case where how documents are batched together matters most."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import corpus
from embedding_engine.engine import Engine
from embedding_engine.events.records import DocumentRecords
from embedding_engine.indexing.chunking import chunk_text
from embedding_engine.indexing.fetch import S3Fetcher
from embedding_engine.indexing.pipeline import Indexer
from embedding_engine.indexing.store import ChunkStore, normalize_sequencer
from embedding_engine.local_db import start_local_postgres

BUCKET = "bench-documents"
SQS_BATCH = 10  # messages per invocation: IndexingBatchSize's maximum (template.yaml)
PARAGRAPHS = 3  # per document: one or two chunks
DOCUMENTS_PER_PLANNED = 5  # short documents per one the plan names: as many chunks as 12 paragraphs


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
        # Not a TemporaryDirectory: it would be removed before the server stops (at exit, with it).
        pgdata = Path(tempfile.mkdtemp(prefix="embeddings-bench-")) / "pgdata"
        url = start_local_postgres(pgdata, cleanup="delete")
        count = documents * DOCUMENTS_PER_PLANNED
        return _measure(engine, url, documents=count, repetitions=repetitions)
    finally:
        server.stop()


def _measure(engine: Engine, url: str, *, documents: int, repetitions: int) -> dict[str, Any]:
    import boto3

    embedder = engine.embedder
    texts = corpus(documents, paragraphs=PARAGRAPHS)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for index, text in enumerate(texts):
        s3.put_object(Bucket=BUCKET, Key=f"doc-{index}.txt", Body=text.encode(), ContentType="text/plain")
    store = ChunkStore(url, model_id=embedder.model_id, dimensions=embedder.dimensions)
    overlap = engine.settings.chunk_overlap_tokens
    indexer = Indexer(embedder, store, fetcher=S3Fetcher(max_bytes=10**8), overlap_tokens=overlap)
    records = DocumentRecords(indexer)
    chunks = [
        chunk.text
        for text in texts
        for chunk in chunk_text(
            text, embedder.tokenizer, max_tokens=embedder.max_seq_length, overlap_tokens=overlap
        )
    ]
    pipeline_rates, encode_rates = [], []
    for repetition in range(1, repetitions + 1):
        keys = [f"doc-{i}.txt" for i in range(documents)]
        batches = [
            sqs_event(keys[first : first + SQS_BATCH], sequencer=f"{repetition:x}")
            for first in range(0, len(keys), SQS_BATCH)
        ]
        started = time.perf_counter()
        for batch in batches:
            assert records(batch, None) == {"batchItemFailures": []}
        pipeline_rates.append(len(chunks) / (time.perf_counter() - started))
        indexed = chunks_stored(url, model_id=embedder.model_id, sequencer=f"{repetition:x}")
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
        "documents_per_invocation": SQS_BATCH,
        "pipeline_chunks_per_s": round(pipeline, 1),
        "encode_chunks_per_s": round(encode, 1),
        "ratio": round(pipeline / encode, 3),
        "pipeline_runs": [round(rate, 1) for rate in pipeline_rates],
        "encode_runs": [round(rate, 1) for rate in encode_rates],
    }


def sqs_event(keys: list[str], *, sequencer: str) -> dict[str, Any]:
    """One SQS batch, as Lambda's event source mapping hands it over: an S3 notification per key."""
    records = []
    for index, key in enumerate(keys):
        notification = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-01-01T00:00:00.000Z",
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "sequencer": sequencer}},
                }
            ]
        }
        records.append(
            {
                "messageId": f"{sequencer}-{index}",
                "receiptHandle": "bench",
                "body": json.dumps(notification),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def chunks_stored(url: str, *, model_id: str, sequencer: str) -> int:
    """The chunks `model_id`'s index holds from events of `sequencer`."""
    import psycopg

    from embedding_engine.indexing.schema import index_url

    with psycopg.connect(index_url(url, model_id)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM chunks WHERE sequencer = %s", (normalize_sequencer(sequencer),)
        ).fetchone()
    return int(row[0]) if row else 0
