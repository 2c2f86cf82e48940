"""Many prepared documents embedded together, then each stored in its own transaction.

Encoding one document (one or two chunks) at a time pads little but runs small batches, and encoding
a few documents as one batch pads every chunk to the longest: a group's chunks are encoded longest
first, in batches of similar lengths."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from embedding_engine.deadline import Deadline
from embedding_engine.embedder import Vectors
from embedding_engine.errors import DeadlineExceededError
from embedding_engine.indexing.pipeline import Indexer, IndexOutcome, PreparedDocument

# Embedder batches per group: enough for the length sort to fill batches, few enough that a deadline
# reached mid-group loses little work, and that stored documents follow their reading closely.
GROUP_BATCHES = 4
# A batch is padded to its longest text, and on CPU a batch of 4 encodes about as many tokens a second
# as a larger one (all-MiniLM-L6-v2, 2 CPUs, texts of 100-254 tokens: about 6,000 tokens/s for 4 to 16
# texts, 5,000-6,000 for 32, 4,300-5,300 for one). So once a batch holds MIN_BATCH chunks, it ends
# before one under SHORTER of its longest: SQS batches of 10 documents of 1-2 chunks each encoded in
# 21 s instead of 26.
MIN_BATCH = 4
SHORTER = 0.75
NOT_STARTED = "Not started: an earlier document ran out of time before the deadline."


def document_groups(documents: Sequence[PreparedDocument], *, chunks: int) -> list[list[PreparedDocument]]:
    """Consecutive documents in groups of at most `chunks` chunks; a document is never split, and one
    of more chunks than that is a group of its own."""
    groups: list[list[PreparedDocument]] = []
    size = 0
    for document in documents:
        if not groups or (size and size + len(document.chunks) > chunks):
            groups.append([])
            size = 0
        groups[-1].append(document)
        size += len(document.chunks)
    return groups


def encode_batches(tokens: Sequence[int], *, size: int) -> list[list[int]]:
    """Positions of texts of `tokens` tokens each, longest first, in batches of at most `size`; a batch
    of MIN_BATCH or more ends before a text under SHORTER of its longest."""
    batches: list[list[int]] = []
    for position in sorted(range(len(tokens)), key=lambda i: -tokens[i]):
        batch = batches[-1] if batches else []
        shorter = len(batch) >= MIN_BATCH and tokens[position] < SHORTER * tokens[batch[0]]
        if not batch or len(batch) == size or shorter:
            batches.append([])
        batches[-1].append(position)
    return batches


def embed_group(group: Sequence[PreparedDocument], indexer: Indexer, *, deadline: Deadline) -> Vectors:
    """The vectors of the group's chunks, in order. A document alone is one `embed_chunks` call, refused
    whole (`DeadlineExceededError`) if it cannot finish by `deadline`; documents together are encoded
    in `encode_batches`, one call each, each refused if it cannot finish in time."""
    chunks = [chunk for document in group for chunk in document.chunks]
    if len(group) == 1:
        return indexer.embed_chunks(chunks, deadline=deadline)
    vectors = np.empty((len(chunks), indexer.embedder.dimensions), dtype=np.float32)
    for batch in encode_batches([chunk.tokens for chunk in chunks], size=indexer.embedder.batch_size):
        vectors[batch] = indexer.embed_chunks([chunks[i] for i in batch], deadline=deadline)
    return vectors


def index_documents(
    indexer: Indexer, documents: Sequence[PreparedDocument], *, deadline: Deadline
) -> Iterator[tuple[PreparedDocument, IndexOutcome | Exception]]:
    """Embed `documents` a group at a time and store each document of a group once it is embedded.
    Yields every document, in order, with its outcome or the error that failed it: a store error fails
    its document alone, an encoding error its group. A group that cannot be embedded by `deadline` is
    tried again a document at a time, so that those that fit in the time left still finish; the first
    that does not fails (`DeadlineExceededError`), and so does every later document, not started."""
    pending = deque(document_groups(documents, chunks=GROUP_BATCHES * indexer.embedder.batch_size))
    stopped = False
    while pending:
        group = pending.popleft()
        if stopped:
            yield from ((document, DeadlineExceededError(NOT_STARTED)) for document in group)
            continue
        started = time.perf_counter()
        try:
            vectors = embed_group(group, indexer, deadline=deadline)
        except DeadlineExceededError as error:
            if len(group) > 1:
                pending.extendleft([document] for document in reversed(group))
                continue
            stopped = True
            yield group[0], error
            continue
        except Exception as error:  # noqa: BLE001  (the group's: its documents fail, the rest go on)
            yield from ((document, error) for document in group)
            continue
        seconds, first = time.perf_counter() - started, 0
        for document in group:
            last = first + len(document.chunks)
            share = seconds * len(document.chunks) / max(len(vectors), 1)
            result: IndexOutcome | Exception
            try:
                result = indexer.store_document(document, vectors[first:last], embed_seconds=share)
            except Exception as error:  # noqa: BLE001  (the store's: an outage, a refused row)
                result = error
            first = last
            yield document, result
