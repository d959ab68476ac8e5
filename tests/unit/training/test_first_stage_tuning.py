"""Choosing the reranked rows' first-stage weight on dev queries: hand-worked
lists where the reranker is wrong (a weight high enough to restore the fused
order wins) and right (w = 0 wins)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hybrid_search.engine import SearchOptions
from training.data import EvalQuery
from training.evaluate import EvalConfig, System, _tune_first_stage_weight

pytestmark = pytest.mark.unit


class _ListsEngine:
    """Answers each query with fixed hits (chunk id, fused score, rerank score)."""

    def __init__(self, lists: dict[str, list[tuple[str, float, float | None]]]) -> None:
        self.lists = lists
        self.seen_weights: list[float | None] = []

    def search(self, name: str, query: str, options: SearchOptions) -> SimpleNamespace:
        self.seen_weights.append(options.rerank_first_stage_weight)
        hits = [SimpleNamespace(chunk_id=c, fused_score=f, rerank_score=r) for c, f, r in self.lists[query]]
        return SimpleNamespace(hits=hits)


DEV = [EvalQuery("q1", "first", {"a": 1}), EvalQuery("q2", "second", {"e": 1})]
OPTIONS = SearchOptions(k=10, rerank=True, rerank_top_n=3)


def test_a_wrong_reranker_gets_the_smallest_weight_that_restores_the_fused_order() -> None:
    # Fused order a, c, d (min-max: 1, 0.5, 0); the reranker prefers c (0.9) to a (0.1).
    # a beats c when (1 - w) 0.1 + w > (1 - w) 0.9 + 0.5 w, i.e. w > 0.8 / 1.3 = 0.615...: first at w = 0.7.
    engine = _ListsEngine(
        {
            "first": [("a", 0.9, 0.1), ("c", 0.5, 0.9), ("d", 0.1, 0.5), ("tail", 0.05, None)],
            "second": [("e", 0.9, 0.1), ("f", 0.5, 0.9), ("g", 0.1, 0.5)],
        }
    )
    tuning = _tune_first_stage_weight(engine, "kb", DEV, OPTIONS, "ndcg@10")
    assert tuning["chosen"] == 0.7
    assert tuning["dev"]["0.6"] < tuning["dev"]["0.7"] == tuning["dev"]["1.0"] == pytest.approx(1.0)
    assert len(tuning["dev"]) == 11 and tuning["dev_queries"] == 2
    assert engine.seen_weights == [1.0, 1.0]  # each dev query reranked once, in fused order


def test_a_right_reranker_keeps_weight_zero() -> None:
    engine = _ListsEngine(
        {
            "first": [("c", 0.9, 0.2), ("a", 0.5, 0.95), ("d", 0.1, 0.5)],
            "second": [("f", 0.9, 0.3), ("e", 0.8, 0.9), ("g", 0.1, 0.5)],
        }
    )
    tuning = _tune_first_stage_weight(engine, "kb", DEV, OPTIONS, "ndcg@10")
    assert tuning["chosen"] == 0.0 and tuning["dev"]["0.0"] == pytest.approx(1.0)
    assert tuning["dev"]["1.0"] < 1.0


def test_tuning_needs_the_dev_documents_in_the_collection() -> None:
    from hybrid_search.errors import ConfigError

    with pytest.raises(ConfigError, match="scope='all'"):
        EvalConfig(systems=(System("base"), System("tuned")), baseline="base", candidate="tuned", scope="test", tune_first_stage_weight=True)
