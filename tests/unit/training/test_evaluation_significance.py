"""The evaluation's per-query metric, its paired significance test and the gate
that can require it: hand-built rankings and per-query values."""

from __future__ import annotations

import math

import pytest

from benchmarks.metrics import paired_randomization_test
from hybrid_search.errors import ConfigError
from training.data import EvalQuery
from training.evaluate import (
    EvalConfig,
    EvaluationReport,
    System,
    _decide,
    _significance,
    per_query_metric,
    rank_metrics,
    render_markdown,
)

pytestmark = pytest.mark.unit

QUERIES = [EvalQuery("q1", "one", {"a": 1}), EvalQuery("q2", "two", {"b": 1}), EvalQuery("q3", "three", {"c": 1})]


def _config(**overrides: object) -> EvalConfig:
    return EvalConfig(systems=(System("base"), System("tuned")), baseline="base", candidate="tuned", metrics=("ndcg@10", "mrr@10"), **overrides)


def test_per_query_metric_is_what_rank_metrics_averages() -> None:
    # q1: relevant at rank 1 -> 1; q2: at rank 2 -> 1 / log2(3); q3: not ranked (no list at all) -> 0.
    rankings = {"q1": ["a", "x"], "q2": ["x", "b"]}
    values = per_query_metric(QUERIES, rankings, "ndcg@10")
    assert values == pytest.approx({"q1": 1.0, "q2": 1 / math.log2(3), "q3": 0.0}, abs=1e-9)
    assert sum(values.values()) / 3 == pytest.approx(rank_metrics(QUERIES, rankings, ("ndcg@10",))["ndcg@10"], abs=1e-4)


def test_significance_pairs_the_same_queries() -> None:
    before = {f"q{i}": 0.5 for i in range(12)}
    after = {f"q{i}": 0.5 + (0.1 if i < 10 else -0.05) for i in range(12)}
    per_query = {"base": {"dense": before, "hybrid": before}, "tuned": {"dense": after, "hybrid": dict(before)}}
    tests = _significance(_config(), per_query, [("dense", "dense"), ("hybrid", "hybrid"), ("sparse", "sparse")])
    assert set(tests) == {"dense", "hybrid"}  # a row one system lacks is not tested
    ids = sorted(before)
    expected_p = paired_randomization_test([after[q] for q in ids], [before[q] for q in ids])
    assert tests["dense"]["delta"] == pytest.approx((10 * 0.1 - 2 * 0.05) / 12, abs=1e-4)
    assert tests["dense"]["p_value"] == pytest.approx(expected_p, abs=1e-4) and tests["dense"]["p_value"] < 0.05
    assert tests["hybrid"] == {"metric": "ndcg@10", "baseline": 0.5, "candidate": 0.5, "delta": 0.0, "p_value": 1.0, "queries": 12}


def test_the_gate_can_require_significance() -> None:
    results = {"base": {"hybrid": {"ndcg@10": 0.50, "mrr@10": 0.4}}, "tuned": {"hybrid": {"ndcg@10": 0.52, "mrr@10": 0.4}}}
    noisy = {"hybrid": {"metric": "ndcg@10", "baseline": 0.5, "candidate": 0.52, "delta": 0.02, "p_value": 0.3, "queries": 12}}
    assert _decide(_config(), results, noisy)["better"] is True  # no p-value required: the gain decides
    decision = _decide(_config(max_p_value=0.05), results, noisy)
    assert decision["better"] is False and decision["p_value"] == 0.3 and decision["max_p_value"] == 0.05
    clear = {"hybrid": {**noisy["hybrid"], "p_value": 0.01}}
    assert _decide(_config(max_p_value=0.05), results, clear)["better"] is True
    report = EvaluationReport(
        config={**_config(max_p_value=0.05).__dict__, "systems": [{"name": "base"}, {"name": "tuned"}], "metrics": ["ndcg@10", "mrr@10"]},
        queries=12,
        corpus_chunks=40,
        results=results,
        collections={},
        seconds={},
        decision=decision,
        significance=noisy,
    )
    text = render_markdown(report)
    assert "| hybrid | 0.5000 | 0.5200 | +0.0200 | 0.3000 |" in text
    assert "p = 0.3000 (required <= 0.05), NOT better" in text


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5])
def test_max_p_value_must_be_a_probability(value: float) -> None:
    with pytest.raises(ConfigError, match="max_p_value"):
        _config(max_p_value=value)
