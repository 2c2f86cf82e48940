"""`POST /search`: semantic search over the indexed chunks, with the same warm model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from embedding_engine.deadline import Deadline
from embedding_engine.embedder import Embedder
from embedding_engine.errors import InvalidInputError, StoreUnavailableError
from embedding_engine.service import check_readable

if TYPE_CHECKING:
    from embedding_engine.indexing.store import ChunkStore

MAX_K = 100


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: StrictStr
    k: StrictInt = 5
    source_prefix: StrictStr | None = None


def search(
    request: SearchRequest, embedder: Embedder, store: ChunkStore | None, *, deadline: Deadline
) -> dict[str, Any]:
    """`{"hits": [{"text", "source", "chunk", "score"}...]}`, best first (score: cosine similarity)."""
    if not request.query:
        raise InvalidInputError("`query` must not be empty.", param="query")
    if not 1 <= request.k <= MAX_K:
        raise InvalidInputError(f"`k` must be between 1 and {MAX_K}; got {request.k}.", param="k")
    if request.source_prefix is not None and "\x00" in request.source_prefix:
        # PostgreSQL text cannot hold NUL, so no source can start with it.
        raise InvalidInputError("`source_prefix` must not contain NUL characters.", param="source_prefix")
    if store is None:
        raise StoreUnavailableError.not_configured(otherwise="or use `make run` (a local PostgreSQL)")
    read = embedder.read([request.query])
    check_readable(read, embedder, "query")
    [vector] = embedder.embed(read.texts, tokens=read.tokens, deadline=deadline)
    hits = store.search(vector, k=request.k, source_prefix=request.source_prefix)
    return {
        "hits": [
            {"text": hit.text, "source": hit.source, "chunk": hit.chunk, "score": round(hit.score, 6)}
            for hit in hits
        ]
    }
