"""Ranking quality as BEIR and MTEB compute it (pytrec_eval's definitions): nDCG@k with linear gains,
recall@k and MRR@k, averaged over every judged query (a query with no hits scores 0)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

Judgements = Mapping[str, int]  # document id -> relevance (> 0 is relevant)


def ndcg_at(ranking: Sequence[str], judged: Judgements, k: int) -> float:
    """Discounted cumulative gain of the first `k` results over that of the ideal ranking."""
    gains = [judged.get(document, 0) for document in ranking[:k]]
    ideal = sorted((gain for gain in judged.values() if gain > 0), reverse=True)[:k]
    ideal_dcg = _dcg(ideal)
    return _dcg(gains) / ideal_dcg if ideal_dcg else 0.0


def recall_at(ranking: Sequence[str], judged: Judgements, k: int) -> float:
    """Share of the relevant documents found in the first `k` results."""
    relevant = {document for document, gain in judged.items() if gain > 0}
    return len(relevant.intersection(ranking[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank_at(ranking: Sequence[str], judged: Judgements, k: int) -> float:
    """1 / the rank of the first relevant result within the first `k`, else 0."""
    for rank, document in enumerate(ranking[:k], start=1):
        if judged.get(document, 0) > 0:
            return 1.0 / rank
    return 0.0


def evaluate(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Judgements]) -> dict[str, float]:
    """nDCG@10, recall@10, recall@100 and MRR@10, each the mean over the queries in `qrels`."""
    per_query = [(rankings.get(query, ()), judged) for query, judged in qrels.items()]
    return {
        "ndcg@10": statistics.fmean(ndcg_at(r, j, 10) for r, j in per_query),
        "recall@10": statistics.fmean(recall_at(r, j, 10) for r, j in per_query),
        "recall@100": statistics.fmean(recall_at(r, j, 100) for r, j in per_query),
        "mrr@10": statistics.fmean(reciprocal_rank_at(r, j, 10) for r, j in per_query),
    }


def _dcg(gains: Sequence[int]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))
