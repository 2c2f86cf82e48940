"""One object event through the pipeline: fetch, extract, chunk, embed in groups, store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit

from embedding_engine.clock import elapsed_ms
from embedding_engine.deadline import Deadline
from embedding_engine.embedder import Embedder, Vectors
from embedding_engine.errors import DocumentError, DocumentTooLargeError, ObjectSkippedError
from embedding_engine.indexing.chunking import Chunk, chunk_text
from embedding_engine.indexing.documents import extract_text
from embedding_engine.indexing.fetch import S3Fetcher
from embedding_engine.indexing.s3_events import ObjectEvent
from embedding_engine.indexing.store import ChunkStore, StoredChunk
from embedding_engine.observability import logger, metrics
from embedding_engine.settings import Settings


@dataclass(frozen=True)
class IndexOutcome:
    action: Literal["indexed", "deleted", "stale", "skipped"]
    source: str
    chunks: int = 0
    reason: str | None = None


class Indexer:
    def __init__(
        self,
        embedder: Embedder,
        store: ChunkStore,
        *,
        fetcher: S3Fetcher,
        overlap_tokens: int,
        max_chars: int = Settings.max_document_chars,
        max_chunks: int = Settings.max_document_chunks,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.fetcher = fetcher
        self.overlap_tokens = overlap_tokens
        self.max_chars = max_chars  # MAX_DOCUMENT_CHARS
        self.max_chunks = max_chunks  # MAX_DOCUMENT_CHUNKS

    def handle(self, event: ObjectEvent, *, deadline: Deadline | None = None) -> IndexOutcome:
        """Apply one S3 object event. Raises `DocumentError` for a document that cannot be read,
        `StoreUnavailableError` when the database is down, and `DeadlineExceededError` when the
        document cannot be done by `deadline` (all mean: report the record failed). A document
        skipped (gone, over a bound, a key PostgreSQL cannot store) is an outcome, not an error."""
        if "\x00" in event.key:
            # PostgreSQL text cannot hold a NUL: nothing of this key was ever stored, nor ever can be.
            reason = f"{event.source!r} has a NUL character (%00) in its key, which PostgreSQL cannot store."
            return self._done(IndexOutcome("skipped", event.source, reason=reason))
        if event.action == "removed":
            applied = self.store.delete_document(event.source, sequencer=event.sequencer)
            return self._done(IndexOutcome("deleted" if applied else "stale", event.source))
        if self.store.has_applied(event.source, event.sequencer):
            return self._done(IndexOutcome("stale", event.source))
        try:
            fetched = self.fetcher.fetch(event)
            return self.index_document(
                event.source,
                data=fetched.data,
                name=event.key,
                content_type=fetched.content_type,
                sequencer=event.sequencer,
                version=fetched.version or event.etag,
                deadline=deadline,
            )
        except ObjectSkippedError as skipped:  # over MAX_DOCUMENT_BYTES, CHARS or CHUNKS, or gone
            # The object's current version will not be indexed: its older text must go too.
            self.store.delete_document(event.source, sequencer=event.sequencer)
            return self._done(IndexOutcome("skipped", event.source, reason=str(skipped)))
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
        deadline: Deadline | None = None,
    ) -> IndexOutcome:
        """Extract, chunk, embed and store one document's bytes (also what the local CLI calls, with no
        deadline). Raises `DocumentTooLargeError` over `max_chars` or `max_chunks`."""
        started = time.perf_counter()
        deadline = deadline or Deadline.never()
        document = extract_text(
            data, key=name, content_type=content_type, max_chars=self.max_chars, deadline=deadline
        )
        chunks = chunk_text(
            document.text,
            self.embedder.tokenizer,
            max_tokens=self.embedder.max_seq_length,
            overlap_tokens=self.overlap_tokens,
        )
        if len(chunks) > self.max_chunks:
            raise DocumentTooLargeError(
                f"{source} makes {len(chunks)} chunks, over MAX_DOCUMENT_CHUNKS={self.max_chunks}; "
                "not indexed."
            )
        vectors = self.embed_chunks(chunks, deadline=deadline)
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
                value=elapsed_ms(started),
            )
        return self._done(outcome)

    def embed_chunks(self, chunks: Sequence[Chunk], *, deadline: Deadline) -> Vectors:
        """One `embed` call (it encodes a batch at a time, so memory stays flat), given the chunks'
        token counts: it refuses with `DeadlineExceededError` what cannot finish by `deadline`."""
        if not chunks:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        texts = [chunk.text for chunk in chunks]
        return self.embedder.embed(texts, tokens=[chunk.tokens for chunk in chunks], deadline=deadline)

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
