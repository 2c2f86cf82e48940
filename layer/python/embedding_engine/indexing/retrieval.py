"""Search modes and results: vector, keyword, or both fused by reciprocal rank fusion; hits as chunks
or as documents (each once, with its best chunk)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedding_engine.indexing.search_sql import ChunkHit, SearchFilters

if TYPE_CHECKING:
    from embedding_engine.indexing.store import ChunkStore

Mode = Literal["vector", "keyword", "hybrid"]
GroupBy = Literal["chunk", "document"]
# Reciprocal rank fusion (Cormack et al., 2009): an item's score is the sum over the rankings of
# 1 / (RRF_K + its rank); 60 is the paper's constant, and Elasticsearch's and OpenSearch's default.
RRF_K = 60
FUSION_DEPTH = 100  # candidates taken from each ranking before fusing
# Grouping by document reads chunks until it has k documents: first this many chunks per document
# wanted, then four times as many each round, up to MAX_GROUPING_CHUNKS.
FIRST_CHUNKS_PER_DOCUMENT = 3
MAX_GROUPING_CHUNKS = 10_000

Ranking = Callable[[int], list[ChunkHit]]  # the best `limit` chunks


def retrieve(
    store: ChunkStore,
    *,
    vector: np.ndarray[Any, Any],
    query: str,
    mode: Mode,
    group_by: GroupBy,
    k: int,
    filters: SearchFilters,
) -> list[ChunkHit]:
    """The `k` best hits for the query, best first."""
    rankings: dict[str, Ranking] = {
        "vector": lambda limit: store.nearest_chunks(vector, limit=limit, filters=filters),
        "keyword": lambda limit: store.keyword_chunks(query, limit=limit, filters=filters),
    }
    depth = k if mode != "hybrid" else max(k, FUSION_DEPTH)
    ranked = [
        documents(rankings[name], depth) if group_by == "document" else rankings[name](depth)
        for name in (("vector", "keyword") if mode == "hybrid" else (mode,))
    ]
    return fuse(ranked, by=group_by)[:k] if mode == "hybrid" else ranked[0]


def documents(ranking: Ranking, k: int) -> list[ChunkHit]:
    """The first `k` documents of a chunk ranking, each as its best chunk."""
    limit = k * FIRST_CHUNKS_PER_DOCUMENT
    while True:
        chunks = ranking(limit)
        best: dict[str, ChunkHit] = {}
        for hit in chunks:
            best.setdefault(hit.source, hit)
        if len(best) >= k or len(chunks) < limit or limit >= MAX_GROUPING_CHUNKS:
            return list(best.values())[:k]
        limit = min(limit * 4, MAX_GROUPING_CHUNKS)


def fuse(rankings: Sequence[Sequence[ChunkHit]], *, by: GroupBy) -> list[ChunkHit]:
    """Reciprocal rank fusion of rankings of chunks (or of documents, `by`); each hit keeps the chunk
    of the first ranking that has it, and the fused score."""
    scores: dict[tuple[str, int], float] = {}
    hits: dict[tuple[str, int], ChunkHit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = (hit.source, hit.chunk if by == "chunk" else 0)
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
            hits.setdefault(key, hit)
    order = sorted(scores, key=lambda key: (-scores[key], key))
    return [replace(hits[key], score=scores[key]) for key in order]
