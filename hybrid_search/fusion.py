"""Fusion: several ranked lists in, one ranked list out.

- Adaptive (the default for new collections, needs no labels):
  ``fused(d) = sum_p w_p(q) * minmax_p(score_p(d))`` where ``minmax_p`` maps the
  path's candidate scores for this query onto [0, 1] (a document the path did
  not return counts 0) and the weights ``w_p(q)`` sum to 1, so fused scores lie
  in [0, 1]: 1 means top of every path's list, 0 bottom of (or absent from)
  every list. The scale is relative to this query's candidates (it ranks, it
  does not certify relevance). ``w_p(q)`` is proportional to
  ``prior_p * confidence_p(q) ** power``: a path whose scores single out a few
  candidates (a peaked distribution) is trusted more on this query than one
  whose scores are flat. ``confidence_p(q) = 1 - H(softmax(z)) / log(n)``, the
  normalised entropy of the softmax of the path's z-scored candidate scores
  (n candidates): 0 for all-equal scores, towards 1 for one clear winner. A
  path with no candidates, one candidate or no spread carries no evidence and
  gets weight 0; when no path has any, the paths with candidates share equally.
- RRF: ``fused(d) = sum_p w_p / (k + rank_p(d))`` over the paths that returned d.
- Weighted: ``fused(d) = sum_p w_p * norm_p(score_p(d))``; a document a path did
  not return gets that path's lowest normalised score (0 for min-max), so a
  missing path never counts as better than the worst candidate it did return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import FusionConfig, Normalization

__all__ = [
    "Fused",
    "RankedList",
    "adaptive_fusion",
    "fuse",
    "fuse_explained",
    "normalize_scores",
    "path_confidence",
    "reciprocal_rank_fusion",
    "weighted_fusion",
]

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


def _unit_range(scores: Sequence[float]) -> list[float] | None:
    """Scores mapped onto [0, 1] by min-max (halved first, so that no difference
    of two finite floats overflows); None without spread or with a non-finite score."""
    if not scores or not all(math.isfinite(s) for s in scores):
        return None
    low, high = min(scores), max(scores)
    span = high / 2 - low / 2
    if not span > 0:
        return None
    return [min(1.0, (s / 2 - low / 2) / span) for s in scores]


def path_confidence(scores: Sequence[float]) -> float:
    """How peaked one path's candidate scores are, in [0, 1): one minus the
    normalised entropy of ``softmax((s - mean) / std)``. 0 with fewer than two
    candidates or no spread (nothing singles a candidate out). Unchanged by
    shifting or scaling the scores, so raw BM25, inner products and cosines compare."""
    unit = _unit_range(scores) if len(scores) >= 2 else None
    return _confidence_of_unit(unit) if unit is not None else 0.0


def _confidence_of_unit(unit: Sequence[float]) -> float:
    n = len(unit)
    mean = sum(unit) / n
    variance = sum((s - mean) * (s - mean) for s in unit) / n
    if not variance > 0:
        return 0.0
    scale = 1.0 / math.sqrt(variance)
    top = max(unit)
    # softmax of z = (s - mean) * scale, shifted by its maximum; with x = z - max(z),
    # H = log(sum e^x) - sum(e^x * x) / sum(e^x) (no logarithm per candidate).
    exps = [math.exp((s - top) * scale) for s in unit]
    total = sum(exps)
    entropy = (
        math.log(total) - sum(e * (s - top) for e, s in zip(exps, unit)) * scale / total
    )
    return max(0.0, 1.0 - entropy / math.log(n))


def adaptive_fusion(
    ranked: Mapping[str, RankedList], priors: Mapping[str, float], power: float
) -> tuple[dict[str, float], dict[str, float]]:
    """(fused score per chunk in [0, 1], the weight each path got on this query; they sum to 1)."""
    units = {
        path: _unit_range([s for _, s in candidates]) if len(candidates) >= 2 else None
        for path, candidates in ranked.items()
    }
    confidence = {
        path: _confidence_of_unit(unit) if unit is not None else 0.0
        for path, unit in units.items()
    }
    raw = {path: priors.get(path, 1.0) * confidence[path] ** power for path in ranked}
    if power == 0:  # 0 ** 0 is 1: a path without evidence must still get nothing
        raw = {
            path: value if confidence[path] > 0 else 0.0 for path, value in raw.items()
        }
    total = sum(raw.values())
    if not total > 0:
        # No path singles anything out: share equally among paths that returned something.
        raw = {path: priors.get(path, 1.0) if ranked[path] else 0.0 for path in ranked}
        total = sum(raw.values())
    weights = {
        path: (value / total if total > 0 else 0.0) for path, value in raw.items()
    }
    fused = dict.fromkeys(
        (chunk_id for candidates in ranked.values() for chunk_id, _ in candidates), 0.0
    )
    for path, candidates in ranked.items():
        weight = weights[path]
        if weight == 0 or not candidates:
            continue
        # No spread (all-equal or a single candidate): every candidate counts as the path's best.
        unit = units[path] or [1.0] * len(candidates)
        for (chunk_id, _), value in zip(candidates, unit):
            fused[chunk_id] += weight * value
    return fused, weights


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
    ranked: Mapping[str, RankedList],
    weights: Mapping[str, float],
    normalization: Normalization,
) -> dict[str, float]:
    all_ids = {chunk_id for candidates in ranked.values() for chunk_id, _ in candidates}
    fused = {chunk_id: 0.0 for chunk_id in all_ids}
    for path, candidates in ranked.items():
        if not candidates:
            continue
        weight = weights.get(path, 1.0)
        normalised = normalize_scores([score for _, score in candidates], normalization)
        floor = min(normalised)
        by_id = {
            chunk_id: value for (chunk_id, _), value in zip(candidates, normalised)
        }
        for chunk_id in all_ids:
            fused[chunk_id] += weight * by_id.get(chunk_id, floor)
    return fused


@dataclass(frozen=True)
class Fused:
    """One query's fusion: (chunk_id, score) best first, and the weight each
    path was given on this query (adaptive: the per-query weights, summing to 1;
    rrf and weighted: the configured weights)."""

    ranked: list[tuple[str, float]]
    weights: dict[str, float]


def fuse(
    ranked: Mapping[str, RankedList],
    config: FusionConfig,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Fused (chunk_id, score), best first (see ``fuse_explained``)."""
    return fuse_explained(ranked, config, weights).ranked


def fuse_explained(
    ranked: Mapping[str, RankedList],
    config: FusionConfig,
    weights: Mapping[str, float] | None = None,
) -> Fused:
    """Fused (chunk_id, score), best first, and the weights used. Ties break by
    the best single-path rank, then by id, so results are deterministic."""
    effective = {
        path: (weights or {}).get(path, config.weight(path)) for path in ranked
    }
    if config.method == "adaptive":
        # A path weighted 0 is dropped outright, as under the other methods.
        kept = {
            path: candidates
            for path, candidates in ranked.items()
            if effective[path] > 0
        }
        fused, used = adaptive_fusion(kept, effective, config.confidence_power)
        effective = {path: used.get(path, 0.0) for path in ranked}
    elif config.method == "rrf":
        fused = reciprocal_rank_fusion(ranked, effective, config.rrf_k)
    else:
        fused = weighted_fusion(ranked, effective, config.normalization)
    best_rank: dict[str, int] = {}
    for candidates in ranked.values():
        for rank, (chunk_id, _) in enumerate(candidates, start=1):
            best_rank[chunk_id] = min(rank, best_rank.get(chunk_id, rank))
    ordered = sorted(
        fused.items(), key=lambda item: (-item[1], best_rank[item[0]], item[0])
    )
    return Fused(ordered, effective)
