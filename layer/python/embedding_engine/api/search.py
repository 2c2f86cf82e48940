"""`POST /search`: vector, keyword or hybrid search over the indexed chunks, with the same warm model;
hits as chunks or as documents, optionally filtered by source, content type and time indexed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictInt, StrictStr

from embedding_engine.deadline import Deadline
from embedding_engine.embedder import Embedder
from embedding_engine.errors import InvalidInputError, StoreUnavailableError
from embedding_engine.indexing.documents import CONTENT_TYPES
from embedding_engine.indexing.retrieval import GroupBy, Mode, retrieve
from embedding_engine.indexing.search_sql import SearchFilters
from embedding_engine.service import check_readable

if TYPE_CHECKING:
    from embedding_engine.indexing.store import ChunkStore

MAX_K = 100
# The default mode, from `make eval` on BEIR SciFact (README: Search quality).
DEFAULT_MODE: Mode = "hybrid"


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: StrictStr
    k: StrictInt = 5
    mode: Mode = DEFAULT_MODE
    group_by: GroupBy = "chunk"
    source_prefix: StrictStr | None = None
    content_type: StrictStr | list[StrictStr] | None = None
    indexed_after: AwareDatetime | None = None
    indexed_before: AwareDatetime | None = None


def search(
    request: SearchRequest, embedder: Embedder, store: ChunkStore | None, *, deadline: Deadline
) -> dict[str, Any]:
    """`{"hits": [{"text", "source", "chunk", "score", "content_type", "indexed_at"}...]}`, best first.
    The score is the cosine similarity (vector), the BM25 score (keyword) or the fused score (hybrid)."""
    filters = _filters(request)
    if not request.query.strip():
        raise InvalidInputError("`query` must not be empty.", param="query")
    if not 1 <= request.k <= MAX_K:
        raise InvalidInputError(f"`k` must be between 1 and {MAX_K}; got {request.k}.", param="k")
    if store is None:
        raise StoreUnavailableError.not_configured(otherwise="or use `make run` (a local PostgreSQL)")
    prompt = embedder.query_prompt  # the model's, if it has one (e5, bge, nomic...)
    read = embedder.read([request.query], prompt=prompt)
    check_readable(read, embedder, "query")
    [vector] = embedder.embed(read.texts, tokens=read.tokens, prompt=prompt, deadline=deadline)
    hits = retrieve(
        store,
        vector=vector,
        query=request.query,
        mode=request.mode,
        group_by=request.group_by,
        k=request.k,
        filters=filters,
    )
    return {
        "hits": [
            {
                "text": hit.text,
                "source": hit.source,
                "chunk": hit.chunk,
                "score": round(hit.score, 6),
                "content_type": hit.content_type,
                "indexed_at": hit.indexed_at.isoformat(),
            }
            for hit in hits
        ]
    }


def _filters(request: SearchRequest) -> SearchFilters:
    """The request's filters, checked: PostgreSQL text cannot hold NUL, so no source starts with it."""
    if request.source_prefix is not None and "\x00" in request.source_prefix:
        raise InvalidInputError("`source_prefix` must not contain NUL characters.", param="source_prefix")
    wanted = request.content_type
    content_types = tuple([wanted] if isinstance(wanted, str) else wanted or [])
    unknown = sorted(set(content_types) - CONTENT_TYPES)
    if unknown:
        raise InvalidInputError(
            f"`content_type` {', '.join(unknown)} is not a type documents are stored as; "
            f"use {', '.join(sorted(CONTENT_TYPES))}.",
            param="content_type",
        )
    after, before = request.indexed_after, request.indexed_before
    if after is not None and before is not None and after >= before:
        raise InvalidInputError("`indexed_after` must be before `indexed_before`.", param="indexed_after")
    return SearchFilters(request.source_prefix, content_types, after, before)
