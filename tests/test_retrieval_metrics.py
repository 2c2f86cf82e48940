"""The evaluation's metrics against figures worked out by hand (bench/retrieval_metrics.py)."""

from __future__ import annotations

import math

import pytest

from bench.retrieval_metrics import evaluate, ndcg_at, recall_at, reciprocal_rank_at

JUDGED = {"d1": 1, "d2": 1}
RANKING = ["d3", "d1", "d4", "d2"]  # relevant at ranks 2 and 4


def test_ndcg_is_dcg_over_the_ideal_dcg() -> None:
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068; ideal = 1/log2(2) + 1/log2(3) = 1.63093
    assert ndcg_at(RANKING, JUDGED, 10) == pytest.approx(1.06161 / 1.63093, abs=1e-5)
    assert ndcg_at(["d1", "d2"], JUDGED, 10) == pytest.approx(1.0)
    assert ndcg_at(RANKING, JUDGED, 1) == 0.0  # cut at k before the first relevant
    # Graded: gains are linear (pytrec_eval), so a 2 counts twice a 1.
    graded = {"a": 2, "b": 1}
    assert ndcg_at(["b", "a"], graded, 10) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_recall_and_reciprocal_rank() -> None:
    assert recall_at(RANKING, JUDGED, 2) == 0.5
    assert recall_at(RANKING, JUDGED, 100) == 1.0
    assert reciprocal_rank_at(RANKING, JUDGED, 10) == 0.5
    assert reciprocal_rank_at(RANKING, JUDGED, 1) == 0.0
    assert recall_at(RANKING, {"d9": 0}, 10) == 0.0  # nothing relevant: 0, not a division by zero


def test_evaluate_averages_over_every_judged_query_including_those_never_answered() -> None:
    qrels = {"q1": JUDGED, "q2": {"d5": 1}}
    scores = evaluate({"q1": ["d1", "d2"]}, qrels)  # q2 got no ranking at all
    assert scores == {"ndcg@10": 0.5, "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}
