"""Object events through the pipeline, in phases: prepare (fetch, extract, chunk), embed, store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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


@dataclass(frozen=True)
class PreparedDocument:
    """A document extracted and chunked, waiting for its vectors; `seconds` spent on it so far."""

    source: str
    sequencer: str
    version: str | None
    chunks: list[Chunk]
    metadata: dict[str, Any]
    seconds: float


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
        # The model's document prompt (e5's "passage: "...), before every chunk: its tokens are left
        # room for in each chunk, and counted.
        self.prompt = embedder.document_prompt
        self.prompt_tokens = embedder.prompt_tokens(self.prompt)

    def handle(self, event: ObjectEvent, *, deadline: Deadline | None = None) -> IndexOutcome:
        """Apply one S3 object event: `prepare`, then `finish`. Raises as they do (all mean: report
        the record failed)."""
        deadline = deadline or Deadline.never()
        prepared = self.prepare(event, deadline=deadline)
        if isinstance(prepared, IndexOutcome):
            return prepared
        return self.finish(prepared, deadline=deadline)

    def prepare(self, event: ObjectEvent, *, deadline: Deadline) -> IndexOutcome | PreparedDocument:
        """The event's outcome when it needs no vectors (a removal, a stale event, a document skipped:
        gone, over a bound, a key PostgreSQL cannot store), else its document fetched and chunked.
        Raises `DocumentError` for a document that cannot be read (its older text withdrawn first),
        `StoreUnavailableError` when the database is down, `DeadlineExceededError` past `deadline`."""
        if "\x00" in event.key:
            # PostgreSQL text cannot hold a NUL: nothing of this key was ever stored, nor ever can be.
            reason = f"{event.source!r} has a NUL character (%00) in its key, which PostgreSQL cannot store."
            return self._done(IndexOutcome("skipped", event.source, reason=reason))
        if event.key.endswith("/") and event.action == "created":
            # The S3 console's "Create folder" (and S3 Inventory lists them): a marker, not a document.
            return self._done(IndexOutcome("skipped", event.source, reason="a folder marker, not a document"))
        if event.action == "removed":
            applied = self.store.delete_document(event.source, sequencer=event.sequencer)
            return self._done(IndexOutcome("deleted" if applied else "stale", event.source))
        if self.store.has_applied(event.source, event.sequencer):
            return self._done(IndexOutcome("stale", event.source))
        try:
            fetched = self.fetcher.fetch(event)
            return self.read_document(
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
        """Extract, chunk, embed and store one document's bytes. Raises `DocumentTooLargeError` over
        `max_chars` or `max_chunks`."""
        deadline = deadline or Deadline.never()
        document = self.read_document(
            source,
            data=data,
            name=name,
            content_type=content_type,
            sequencer=sequencer,
            version=version,
            deadline=deadline,
        )
        return self.finish(document, deadline=deadline)

    def read_document(
        self,
        source: str,
        *,
        data: bytes,
        name: str,
        content_type: str | None,
        sequencer: str,
        version: str | None,
        deadline: Deadline | None = None,
    ) -> PreparedDocument:
        """Extract and chunk one document's bytes. Raises `DocumentError`s, among them
        `DocumentTooLargeError` over `max_chars` or `max_chunks`."""
        started = time.perf_counter()
        document = extract_text(
            data,
            key=name,
            content_type=content_type,
            max_chars=self.max_chars,
            deadline=deadline or Deadline.never(),
        )
        chunks = chunk_text(
            document.text,
            self.embedder.tokenizer,
            max_tokens=self.embedder.max_seq_length - self.prompt_tokens,
            overlap_tokens=self.overlap_tokens,
        )
        if len(chunks) > self.max_chunks:
            raise DocumentTooLargeError(
                f"{source} makes {len(chunks)} chunks, over MAX_DOCUMENT_CHUNKS={self.max_chunks}; "
                "not indexed."
            )
        metadata = {"content_type": document.content_type, "bytes": len(data), **document.metadata}
        seconds = time.perf_counter() - started
        return PreparedDocument(source, sequencer, version, chunks, metadata, seconds)

    def finish(self, document: PreparedDocument, *, deadline: Deadline) -> IndexOutcome:
        """Embed one prepared document alone, then store it."""
        started = time.perf_counter()
        vectors = self.embed_chunks(document.chunks, deadline=deadline)
        return self.store_document(document, vectors, embed_seconds=time.perf_counter() - started)

    def embed_chunks(self, chunks: Sequence[Chunk], *, deadline: Deadline) -> Vectors:
        """One `embed` call (it encodes a batch at a time, so memory stays flat), given the chunks'
        token counts: it refuses with `DeadlineExceededError` what cannot finish by `deadline`."""
        if not chunks:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        texts = [chunk.text for chunk in chunks]
        tokens = [chunk.tokens + self.prompt_tokens for chunk in chunks]
        return self.embedder.embed(texts, tokens=tokens, prompt=self.prompt, deadline=deadline)

    def store_document(
        self, document: PreparedDocument, vectors: Vectors, *, embed_seconds: float
    ) -> IndexOutcome:
        """Replace the document's chunks (one vector each) in one transaction, unless a newer event
        was applied ("stale"). DocumentIndexMs is the document's own work: reading and chunking it,
        `embed_seconds` (its share of the encoding) and this write."""
        started = time.perf_counter()
        stored = [
            StoredChunk(
                index=chunk.index,
                text=chunk.text,
                embedding=vector,
                metadata={"start": chunk.start, "end": chunk.end, "tokens": chunk.tokens},
            )
            for chunk, vector in zip(document.chunks, vectors, strict=True)
        ]
        applied = self.store.replace_document(
            document.source,
            sequencer=document.sequencer,
            version=document.version,
            chunks=stored,
            metadata=document.metadata,
        )
        outcome = IndexOutcome("indexed" if applied else "stale", document.source, chunks=len(stored))
        if applied:
            earlier = document.seconds + embed_seconds  # as if that work had run just before this write
            metrics.add_metric(name="ChunksIndexed", unit=MetricUnit.Count, value=len(stored))
            metrics.add_metric(
                name="DocumentIndexMs", unit=MetricUnit.Milliseconds, value=elapsed_ms(started - earlier)
            )
        return self._done(outcome)

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
