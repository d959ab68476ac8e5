"""Ranking metrics and the paired significance test, one implementation for
``benchmarks`` and ``training``. Metrics are computed with ranx (the numbers
BEIR and Pyserini report; the ``bench`` and ``train`` extras install it).

- nDCG@10 with linear gains (``sum rel / log2(rank + 1)``), as pytrec_eval and BEIR;
- Recall@k: share of the relevant (grade > 0) documents retrieved;
- MRR@10: reciprocal rank of the first relevant document within the top 10;
- MAP: mean average precision over the retrieved list.

Runs are ranked lists exactly as the engine returned them: they are turned into
strictly decreasing scores before evaluation, so no evaluator re-sorts ties in
its own way. An id retrieved more than once counts once, at its best rank.
``fast_ndcg`` is a plain-Python nDCG@k for grid searches, checked against ranx
in the tests. A query with no result scores 0 on every metric (it still counts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import MissingDependencyError

__all__ = [
    "CURVE_KS",
    "METRICS",
    "Qrels",
    "Ranking",
    "as_ranking",
    "evaluate",
    "fast_ndcg",
    "paired_comparison",
    "paired_randomization_test",
    "recall_curve",
    "require_ranx",
]

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map")
CURVE_KS = (1, 2, 3, 5, 10, 20, 30, 50, 100)

Qrels = Mapping[str, Mapping[str, int]]
Ranking = dict[str, list[str]]  # query id -> document ids, best first
_NONE = "__no_result__"


def as_ranking(doc_ids: Iterable[str]) -> list[str]:
    """Document ids in first-seen order (a document found via several chunks counts once)."""
    return list(dict.fromkeys(doc_ids))


def require_ranx(extra: str = "bench") -> Any:
    """The ranx module, or a MissingDependencyError naming ``extra`` (the
    caller's extra: ``bench`` for benchmarks, ``train`` for training)."""
    try:
        import ranx
    except ImportError as error:
        raise MissingDependencyError("ranx", extra, "evaluating retrieval (nDCG, MRR, recall)") from error
    return ranx


def _ranx_objects(qrels: Qrels, run: Mapping[str, Sequence[str]]) -> Any:
    ranx = require_ranx()
    RQrels, RRun = ranx.Qrels, ranx.Run

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
    ranx_evaluate = require_ranx().evaluate

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


def paired_comparison(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, Any]:
    """Per-query values after vs before over the same queries: both means, their
    difference, and a two-sided paired randomization (sign-flip) test, 10,000 trials."""
    ids = sorted(before)
    a, b = [after[q] for q in ids], [before[q] for q in ids]
    return {
        "baseline": round(sum(b) / len(b), 4),
        "candidate": round(sum(a) / len(a), 4),
        "delta": round((sum(a) - sum(b)) / len(a), 4),
        "p_value": round(paired_randomization_test(a, b), 4),
        "queries": len(ids),
    }
