"""Fusion: several ranked lists in, one ranked list out.

- RRF: ``fused(d) = sum_p w_p / (k + rank_p(d))`` over the paths that returned d.
- Weighted: ``fused(d) = sum_p w_p * norm_p(score_p(d))``; a document a path did
  not return gets that path's lowest normalised score (0 for min-max), so a
  missing path never counts as better than the worst candidate it did return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .config import FusionConfig, Normalization

__all__ = ["RankedList", "fuse", "normalize_scores", "reciprocal_rank_fusion", "weighted_fusion"]

# One path's candidates, best first: (chunk_id, raw score).
RankedList = Sequence[tuple[str, float]]


def normalize_scores(scores: Sequence[float], method: Normalization) -> list[float]:
    if method == "none" or not scores:
        return [float(s) for s in scores]
    if method == "min-max":
        low, high = min(scores), max(scores)
        if high == low:
            # One distinct score carries no spread: treat every candidate as best.
            return [1.0 for _ in scores]
        return [(s - low) / (high - low) for s in scores]
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if std == 0:
        return [0.0 for _ in scores]
    return [(s - mean) / std for s in scores]


def reciprocal_rank_fusion(
    ranked: Mapping[str, RankedList], weights: Mapping[str, float], k: int
) -> dict[str, float]:
    fused: dict[str, float] = {}
    for path, candidates in ranked.items():
        weight = weights.get(path, 1.0)
        for rank, (chunk_id, _) in enumerate(candidates, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    return fused


def weighted_fusion(
    ranked: Mapping[str, RankedList], weights: Mapping[str, float], normalization: Normalization
) -> dict[str, float]:
    all_ids = {chunk_id for candidates in ranked.values() for chunk_id, _ in candidates}
    fused = {chunk_id: 0.0 for chunk_id in all_ids}
    for path, candidates in ranked.items():
        if not candidates:
            continue
        weight = weights.get(path, 1.0)
        normalised = normalize_scores([score for _, score in candidates], normalization)
        floor = min(normalised)
        by_id = {chunk_id: value for (chunk_id, _), value in zip(candidates, normalised)}
        for chunk_id in all_ids:
            fused[chunk_id] += weight * by_id.get(chunk_id, floor)
    return fused


def fuse(
    ranked: Mapping[str, RankedList],
    config: FusionConfig,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Fused (chunk_id, score), best first. Ties break by the best single-path
    rank, then by id, so results are deterministic."""
    effective = {path: (weights or {}).get(path, config.weight(path)) for path in ranked}
    if config.method == "rrf":
        fused = reciprocal_rank_fusion(ranked, effective, config.rrf_k)
    else:
        fused = weighted_fusion(ranked, effective, config.normalization)
    best_rank: dict[str, int] = {}
    for candidates in ranked.values():
        for rank, (chunk_id, _) in enumerate(candidates, start=1):
            best_rank[chunk_id] = min(rank, best_rank.get(chunk_id, rank))
    return sorted(fused.items(), key=lambda item: (-item[1], best_rank[item[0]], item[0]))
