"""One object event through the pipeline: fetch, extract, chunk, embed in groups, store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit

from embedding_engine.embedder import Embedder, Vectors
from embedding_engine.errors import DocumentError, ObjectSkippedError
from embedding_engine.indexing.chunking import chunk_text
from embedding_engine.indexing.documents import extract_text
from embedding_engine.indexing.fetch import S3Fetcher
from embedding_engine.indexing.s3_events import ObjectEvent
from embedding_engine.indexing.store import ChunkStore, StoredChunk
from embedding_engine.observability import logger, metrics

# Chunks embedded per forward-pass group: memory stays flat however large the document.
EMBED_GROUP = 64


@dataclass(frozen=True)
class IndexOutcome:
    action: Literal["indexed", "deleted", "stale", "skipped"]
    source: str
    chunks: int = 0
    reason: str | None = None


class Indexer:
    def __init__(
        self, embedder: Embedder, store: ChunkStore, *, fetcher: S3Fetcher, overlap_tokens: int
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.fetcher = fetcher
        self.overlap_tokens = overlap_tokens

    def handle(self, event: ObjectEvent) -> IndexOutcome:
        """Apply one S3 object event. Raises `DocumentError` for a document that cannot be read, and
        `StoreUnavailableError` when the database is down (both mean: report the record failed)."""
        if event.action == "removed":
            applied = self.store.delete_document(event.source, sequencer=event.sequencer)
            return self._done(IndexOutcome("deleted" if applied else "stale", event.source))
        if self.store.has_applied(event.source, event.sequencer):
            return self._done(IndexOutcome("stale", event.source))
        try:
            fetched = self.fetcher.fetch(event)
        except ObjectSkippedError as skipped:
            # The object's current version will not be indexed: its older text must go too.
            self.store.delete_document(event.source, sequencer=event.sequencer)
            return self._done(IndexOutcome("skipped", event.source, reason=str(skipped)))
        try:
            return self.index_document(
                event.source,
                data=fetched.data,
                name=event.key,
                content_type=fetched.content_type,
                sequencer=event.sequencer,
                version=fetched.version or event.etag,
            )
        except DocumentError:
            self.store.withdraw_document(event.source, sequencer=event.sequencer)
            raise

    def index_document(
        self,
        source: str,
        *,
        data: bytes,
        name: str,
        content_type: str | None,
        sequencer: str,
        version: str | None,
    ) -> IndexOutcome:
        """Extract, chunk, embed and store one document's bytes (also what the local CLI calls)."""
        started = time.perf_counter()
        document = extract_text(data, key=name, content_type=content_type)
        chunks = chunk_text(
            document.text,
            self.embedder.tokenizer,
            max_tokens=self.embedder.max_seq_length,
            overlap_tokens=self.overlap_tokens,
        )
        vectors = self.embed_chunks([chunk.text for chunk in chunks])
        stored = [
            StoredChunk(
                index=chunk.index,
                text=chunk.text,
                embedding=vector,
                metadata={"start": chunk.start, "end": chunk.end, "tokens": chunk.tokens},
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        metadata = {"content_type": document.content_type, "bytes": len(data), **document.metadata}
        applied = self.store.replace_document(
            source, sequencer=sequencer, version=version, chunks=stored, metadata=metadata
        )
        outcome = IndexOutcome("indexed" if applied else "stale", source, chunks=len(stored))
        if applied:
            metrics.add_metric(name="ChunksIndexed", unit=MetricUnit.Count, value=len(stored))
            metrics.add_metric(
                name="DocumentIndexMs",
                unit=MetricUnit.Milliseconds,
                value=(time.perf_counter() - started) * 1000,
            )
        return self._done(outcome)

    def embed_chunks(self, texts: Sequence[str]) -> Vectors:
        """Embed in groups of `EMBED_GROUP`, so a large document never makes one giant batch."""
        if not texts:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        groups = [self.embedder.embed(texts[i : i + EMBED_GROUP]) for i in range(0, len(texts), EMBED_GROUP)]
        return np.concatenate(groups)

    def _done(self, outcome: IndexOutcome) -> IndexOutcome:
        metric = {"indexed": "DocumentsIndexed", "deleted": "DocumentsDeleted", "stale": "StaleEvents"}
        metrics.add_metric(
            name=metric.get(outcome.action, "DocumentsSkipped"), unit=MetricUnit.Count, value=1
        )
        log = logger.warning if outcome.action == "skipped" else logger.info
        log(
            f"document {outcome.action}",
            extra={"source": outcome.source, "chunks": outcome.chunks, "reason": outcome.reason},
        )
        return outcome
