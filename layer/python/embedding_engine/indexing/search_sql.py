"""The two rankings search fuses, as SQL over the chunks table: nearest vectors (pgvector's HNSW
index) and keyword relevance (Okapi BM25 over PostgreSQL full-text search, with its GIN index).

Both take the same structured filters, and both return chunks best first, so that `retrieval.py`
can fuse and group them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

DEFAULT_EF_SEARCH = 40  # pgvector's default hnsw.ef_search
MAX_EF_SEARCH = 1000  # pgvector's maximum: deeper scans go on iteratively
# BM25's usual parameters (Lucene's, Elasticsearch's): term-frequency saturation, length normalisation.
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class SearchFilters:
    """What a hit must match besides the query; every field optional."""

    source_prefix: str | None = None
    content_types: tuple[str, ...] = ()
    indexed_after: datetime | None = None  # inclusive
    indexed_before: datetime | None = None  # exclusive

    @property
    def any(self) -> bool:
        return bool(self.source_prefix or self.content_types or self.indexed_after or self.indexed_before)

    def params(self) -> dict[str, Any]:
        return {
            "prefix": self.source_prefix or None,
            "types": list(self.content_types) or None,
            "after": self.indexed_after,
            "before": self.indexed_before,
        }


@dataclass(frozen=True)
class ChunkHit:
    source: str
    chunk: int
    text: str
    score: float
    content_type: str | None
    indexed_at: datetime


# Both searches are planned for their own parameters, never prepared: psycopg prepares a statement
# run five times, and PostgreSQL's generic plan for it, made after a few searches for 100 documents (a
# sequential scan, right for 300 chunks of 10,000), then served every search: 55 ms instead of 15 for
# k = 10 on SciFact.
FILTERS = (
    "(%(prefix)s::text IS NULL OR starts_with(source, %(prefix)s))"
    " AND (%(types)s::text[] IS NULL OR content_type = ANY(%(types)s))"
    " AND (%(after)s::timestamptz IS NULL OR indexed_at >= %(after)s)"
    " AND (%(before)s::timestamptz IS NULL OR indexed_at < %(before)s)"
)
HIT_COLUMNS = "source, chunk_index, text, {score}, content_type, indexed_at"

NEAREST = (
    f"SELECT {HIT_COLUMNS.format(score='1 - (embedding <=> %(q)s)')} FROM chunks WHERE {FILTERS}"
    " ORDER BY embedding <=> %(q)s LIMIT %(limit)s"
)

# A lexeme as a one-word tsquery, quoted as PostgreSQL's own tsquery output quotes it.
LEXEME_QUERY = r"('''' || replace(replace({0}, '\', '\\'), '''', '''''') || '''')::tsquery"
# Okapi BM25 for each chunk holding any of the query's lexemes (stemmed, stop words dropped, as the
# chunks were): idf from the lexeme's chunk count (GIN index); the term frequency from the lexeme's
# positions in the chunk's tsvector, kept by marking the query's lexemes with weight A (in C, where
# unnesting every lexeme of every match took most of the time); the length as the chunk's count of
# distinct lexemes. MATERIALIZED: inlined, PostgreSQL would count each lexeme's chunks again for
# every matching chunk (2.8 s a query on SciFact instead of 0.1).
KEYWORD = f"""
WITH terms AS MATERIALIZED (
    SELECT array_agg(lexeme) AS lexemes,
        string_agg({LEXEME_QUERY.format("lexeme")}::text, ' | ')::tsquery AS any_of
    FROM unnest(to_tsvector(%(config)s::regconfig, %(query)s))
),
idf AS MATERIALIZED (
    SELECT lexeme, ln(1 + (%(chunks)s - found.n + 0.5) / (found.n + 0.5)) AS idf
    FROM terms, unnest(terms.lexemes) AS lexeme,
    LATERAL (SELECT count(*) AS n FROM chunks WHERE tsv @@ {LEXEME_QUERY.format("lexeme")}) AS found
),
matches AS (
    SELECT id, length(tsv) AS length, ts_filter(setweight(tsv, 'A', terms.lexemes), '{{a}}') AS found
    FROM chunks, terms WHERE tsv @@ terms.any_of AND {FILTERS}
),
scored AS (
    SELECT matches.id, sum(idf.idf * term.tf * ({BM25_K1} + 1) / (term.tf + {BM25_K1}
        * (1 - {BM25_B} + {BM25_B} * matches.length / %(average_length)s))) AS score
    FROM matches, LATERAL (SELECT lexeme, cardinality(positions) AS tf FROM unnest(matches.found)) AS term
    JOIN idf USING (lexeme)
    GROUP BY matches.id ORDER BY score DESC, matches.id LIMIT %(limit)s
)
SELECT {HIT_COLUMNS.format(score="scored.score")}
FROM scored JOIN chunks USING (id) ORDER BY scored.score DESC, id
"""
CORPUS = "SELECT count(*), coalesce(avg(length(tsv)), 0) FROM chunks"


@dataclass(frozen=True)
class Corpus:
    """What BM25 needs to know of all the chunks: how many, and their average length in lexemes."""

    chunks: int
    average_length: float


def corpus(connection: psycopg.Connection[Any]) -> Corpus:
    """Counted over every chunk, a full scan (`ChunkStore` keeps the answer a while)."""
    row = connection.execute(CORPUS).fetchone()
    assert row is not None  # an aggregate always answers
    return Corpus(int(row[0]), float(row[1]))


def nearest_chunks(
    connection: psycopg.Connection[Any], vector: np.ndarray[Any, Any], *, limit: int, filters: SearchFilters
) -> list[ChunkHit]:
    """The `limit` chunks nearest to `vector` by cosine distance that pass `filters`."""
    with connection.transaction():
        scan_settings: list[sql.Composable] = []
        if limit > DEFAULT_EF_SEARCH:  # an HNSW scan yields at most ef_search rows, whatever the LIMIT
            ef_search = min(limit, MAX_EF_SEARCH)
            scan_settings.append(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef_search)))
        if filters.any or limit > MAX_EF_SEARCH:
            # The scan goes on until `limit` rows pass the filters (pgvector >= 0.8), in order.
            scan_settings.append(sql.SQL("SET LOCAL hnsw.iterative_scan = strict_order"))
        if scan_settings:  # one round trip for all
            connection.execute(sql.SQL("; ").join(scan_settings))
        params = {"q": vector, "limit": limit, **filters.params()}
        rows = connection.execute(NEAREST, params, prepare=False).fetchall()
    return [_hit(row) for row in rows]


def keyword_chunks(
    connection: psycopg.Connection[Any],
    query: str,
    *,
    config: str,
    corpus: Corpus,
    limit: int,
    filters: SearchFilters,
) -> list[ChunkHit]:
    """The `limit` chunks that pass `filters` with the highest BM25 score for `query`'s words."""
    params = {
        "query": query,
        "config": config,
        "chunks": corpus.chunks,
        "average_length": corpus.average_length or 1.0,
        "limit": limit,
        **filters.params(),
    }
    return [_hit(row) for row in connection.execute(KEYWORD, params, prepare=False).fetchall()]


def _hit(row: tuple[Any, ...]) -> ChunkHit:
    source, chunk, text, score, content_type, indexed_at = row
    return ChunkHit(source, chunk, text, float(score), content_type, indexed_at)
