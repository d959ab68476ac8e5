"""The benchmark metrics agree with hand-computed values and with pytrec_eval."""

from __future__ import annotations

import math
import random

import pytest

from benchmarks.metrics import METRICS, evaluate, fast_ndcg, latency_summary, paired_randomization_test, recall_curve

pytestmark = pytest.mark.unit

QRELS = {
    "q1": {"a": 1, "b": 2, "c": 0},  # c judged non-relevant
    "q2": {"d": 1},
    "q3": {"e": 1, "f": 1},  # nothing retrieved
}
RUN = {
    "q1": ["x", "b", "a", "c"],
    "q2": ["d"],
    "q3": [],
}


def _by_hand() -> dict[str, dict[str, float]]:
    l2 = math.log2
    q1_dcg = 2 / l2(3) + 1 / l2(4)
    q1_idcg = 2 / l2(2) + 1 / l2(3)
    return {
        "ndcg@10": {"q1": q1_dcg / q1_idcg, "q2": 1.0, "q3": 0.0},
        "recall@10": {"q1": 1.0, "q2": 1.0, "q3": 0.0},
        "recall@100": {"q1": 1.0, "q2": 1.0, "q3": 0.0},
        "mrr@10": {"q1": 0.5, "q2": 1.0, "q3": 0.0},
        "map": {"q1": (1 / 2 + 2 / 3) / 2, "q2": 1.0, "q3": 0.0},
    }


def test_metrics_match_hand_computed_values() -> None:
    means, per_query = evaluate(QRELS, RUN)
    expected = _by_hand()
    for metric in METRICS:
        for qid in QRELS:
            assert per_query[metric][qid] == pytest.approx(expected[metric][qid], abs=1e-6), (metric, qid)
        assert means[metric] == pytest.approx(sum(expected[metric].values()) / 3, abs=1e-6)


def test_recall_cut_and_curve() -> None:
    qrels = {"q": {f"d{i}": 1 for i in range(4)}}
    run = {"q": ["d0", "x1", "x2", "d1"] + [f"x{i}" for i in range(3, 12)] + ["d2"]}
    curve = recall_curve(qrels, run, ks=(1, 4, 10, 20))
    assert curve == {1: pytest.approx(0.25), 4: pytest.approx(0.5), 10: pytest.approx(0.5), 20: pytest.approx(0.75)}


def test_duplicate_documents_count_once_at_their_best_rank() -> None:
    _, per_query = evaluate({"q": {"a": 1}}, {"q": ["a", "a", "b"]})
    assert per_query["ndcg@10"]["q"] == pytest.approx(1.0)
    assert per_query["map"]["q"] == pytest.approx(1.0)


def _random_case(seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(25):
        judged = rng.sample(docs, rng.randint(1, 8))
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if not any(g > 0 for g in qrels[f"q{q}"].values()):
            qrels[f"q{q}"][judged[0]] = 1
        run[f"q{q}"] = rng.sample(docs, rng.randint(0, 40))
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pytrec_eval(seed: int) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval", reason="pip install pytrec-eval-terrier for the second implementation")
    qrels, run = _random_case(seed)
    _, ours = evaluate(qrels, run)
    # pytrec_eval sorts by score (ties by doc id): give strictly decreasing scores.
    trec_run = {q: ({d: float(len(docs) - i) for i, d in enumerate(docs)} or {"none": 0.0}) for q, docs in run.items()}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10,100", "recip_rank", "map"})
    theirs = evaluator.evaluate(trec_run)
    # pytrec_eval's recip_rank has no cut-off: compare MRR@10 with a hand cut.
    for q in qrels:
        assert ours["ndcg@10"][q] == pytest.approx(theirs[q]["ndcg_cut_10"], abs=1e-6)
        assert ours["recall@10"][q] == pytest.approx(theirs[q]["recall_10"], abs=1e-6)
        assert ours["recall@100"][q] == pytest.approx(theirs[q]["recall_100"], abs=1e-6)
        assert ours["map"][q] == pytest.approx(theirs[q]["map"], abs=1e-6)
        first = next((i for i, d in enumerate(run[q][:10]) if qrels[q].get(d, 0) > 0), None)
        assert ours["mrr@10"][q] == pytest.approx(0.0 if first is None else 1 / (first + 1), abs=1e-6)
        if first is not None:
            assert ours["mrr@10"][q] == pytest.approx(theirs[q]["recip_rank"], abs=1e-6)


@pytest.mark.parametrize("seed", [3, 4])
def test_fast_ndcg_matches_ranx(seed: int) -> None:
    qrels, run = _random_case(seed)
    _, per_query = evaluate(qrels, run, ["ndcg@10"])
    for q in qrels:
        assert fast_ndcg(qrels[q], run[q], 10) == pytest.approx(per_query["ndcg@10"][q], abs=1e-9)


def test_paired_randomization_test() -> None:
    assert paired_randomization_test([0.5] * 10, [0.5] * 10) == 1.0
    assert paired_randomization_test([1.0] * 30, [0.0] * 30) < 0.001
    assert paired_randomization_test([1, 0, 1, 0], [0, 1, 0, 1]) > 0.5


def test_latency_summary() -> None:
    summary = latency_summary({"total": list(range(1, 101)), "rerank": []})
    assert summary["total"]["p50"] == pytest.approx(50.5)
    assert summary["total"]["p95"] == pytest.approx(95.05)
    assert "rerank" not in summary
