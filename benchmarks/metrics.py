"""Benchmark metrics: the retrieval metrics and the paired significance test
are the library's (``hybrid_search.evaluation``, shared with ``training``);
latency summaries are the benchmarks' own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hybrid_search.evaluation import (
    CURVE_KS,
    METRICS,
    Ranking,
    as_ranking,
    evaluate,
    fast_ndcg,
    paired_randomization_test,
    recall_curve,
)

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
