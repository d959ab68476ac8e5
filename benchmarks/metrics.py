"""Retrieval metrics, computed with ranx (the numbers BEIR and Pyserini report).

- nDCG@10 with linear gains (``sum rel / log2(rank + 1)``), as pytrec_eval and BEIR;
- Recall@10 and Recall@100: share of the relevant (grade > 0) documents retrieved;
- MRR@10: reciprocal rank of the first relevant document within the top 10;
- MAP: mean average precision over the retrieved list (top 100 here, i.e. MAP@100).

Runs are ranked lists exactly as the engine returned them: they are turned into
strictly decreasing scores before evaluation, so no evaluator re-sorts ties in
its own way. A document retrieved through several chunks counts once, at its
best rank (one chunk per document in the BEIR benchmarks, so this never fires
there). ``fast_ndcg`` is a plain-Python nDCG@k used inside the tuning grid
search, checked against ranx in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "METRICS",
    "CURVE_KS",
    "Ranking",
    "as_ranking",
    "evaluate",
    "recall_curve",
    "fast_ndcg",
    "paired_randomization_test",
    "latency_summary",
]

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map")
CURVE_KS = (1, 2, 3, 5, 10, 20, 30, 50, 100)

Qrels = Mapping[str, Mapping[str, int]]
Ranking = dict[str, list[str]]  # query id -> document ids, best first
_NONE = "__no_result__"


def as_ranking(doc_ids: Iterable[str]) -> list[str]:
    """Document ids in first-seen order (a document found via several chunks counts once)."""
    return list(dict.fromkeys(doc_ids))


def _ranx_objects(qrels: Qrels, run: Mapping[str, Sequence[str]]):
    from ranx import Qrels as RQrels
    from ranx import Run as RRun

    qrels_dict = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    run_dict: dict[str, dict[str, float]] = {}
    for qid in qrels_dict:
        docs = as_ranking(run.get(qid, []))
        n = len(docs)
        run_dict[qid] = {d: float(n - i) for i, d in enumerate(docs)} if docs else {_NONE: 0.0}
    return RQrels(qrels_dict), RRun(run_dict)


def evaluate(
    qrels: Qrels, run: Mapping[str, Sequence[str]], metrics: Sequence[str] = METRICS
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean of each metric, {metric: {query id: value}}) over every query in ``qrels``.

    A query with no result scores 0 on every metric (it still counts)."""
    from ranx import evaluate as ranx_evaluate

    if not qrels:
        raise ValueError("no judged queries to evaluate")
    rq, rr = _ranx_objects(qrels, run)
    per_query_arrays = ranx_evaluate(rq, rr, list(metrics), return_mean=False, make_comparable=True)
    if len(metrics) == 1:
        per_query_arrays = {metrics[0]: per_query_arrays}
    qids = list(rq.keys())
    per_query = {m: {q: float(v) for q, v in zip(qids, np.asarray(per_query_arrays[m]))} for m in metrics}
    means = {m: float(np.mean(list(per_query[m].values()))) for m in metrics}
    return means, per_query


def recall_curve(qrels: Qrels, run: Mapping[str, Sequence[str]], ks: Sequence[int] = CURVE_KS) -> dict[int, float]:
    means, _ = evaluate(qrels, run, [f"recall@{k}" for k in ks])
    return {k: means[f"recall@{k}"] for k in ks}


def fast_ndcg(qrels: Mapping[str, int], ranking: Sequence[str], k: int = 10) -> float:
    """nDCG@k (linear gains) of one ranking, as ranx and pytrec_eval compute it."""
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return 0.0
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    dcg = 0.0
    for i, doc in enumerate(as_ranking(ranking)[:k]):
        g = qrels.get(doc, 0)
        if g > 0:
            dcg += g / math.log2(i + 2)
    return dcg / idcg


def paired_randomization_test(a: Sequence[float], b: Sequence[float], trials: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of a paired randomization (sign-flip) test on per-query scores."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diffs) == 0 or not np.any(diffs):
        return 1.0
    observed = abs(diffs.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(trials, len(diffs)))
    permuted = np.abs((signs * diffs).mean(axis=1))
    return float((np.sum(permuted >= observed - 1e-12) + 1) / (trials + 1))


def latency_summary(samples: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """{stage: {p50, p95, mean, n}} in milliseconds."""
    out: dict[str, dict[str, float]] = {}
    for stage, values in samples.items():
        if not values:
            continue
        arr = np.asarray(values, dtype=float)
        out[stage] = {
            "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)),
            "mean": float(arr.mean()),
            "n": int(arr.size),
        }
    return out
