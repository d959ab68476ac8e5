"""Fusion against hand-computed values (tolerance 1e-12: pure float arithmetic)."""

import math

import pytest

from hybrid_search.config import FusionConfig
from hybrid_search.fusion import fuse, normalize_scores

pytestmark = pytest.mark.unit

RANKED = {
    "bm25": [("a", 12.0), ("b", 9.0), ("c", 3.0)],
    "dense": [("b", 0.9), ("d", 0.8), ("a", 0.1)],
}


def test_rrf_matches_hand_computation():
    fused = dict(fuse(RANKED, FusionConfig(method="rrf", rrf_k=60)))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63, abs=1e-12)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61, abs=1e-12)
    assert fused["c"] == pytest.approx(1 / 63, abs=1e-12)
    assert fused["d"] == pytest.approx(1 / 62, abs=1e-12)


def test_rrf_weights_scale_each_path():
    fused = dict(fuse(RANKED, FusionConfig(method="rrf", rrf_k=10), weights={"bm25": 2.0, "dense": 0.5}))
    assert fused["a"] == pytest.approx(2 / 11 + 0.5 / 13, abs=1e-12)
    assert fused["d"] == pytest.approx(0.5 / 12, abs=1e-12)


def test_weighted_min_max_missing_candidates_get_the_path_floor():
    fused = dict(fuse(RANKED, FusionConfig(method="weighted", normalization="min-max")))
    # bm25 min-max: a=1, b=(9-3)/9, c=0; d missing -> 0.  dense: b=1, d=0.7/0.8, a=0; c missing -> 0.
    assert fused["a"] == pytest.approx(1.0 + 0.0, abs=1e-12)
    assert fused["b"] == pytest.approx(6 / 9 + 1.0, abs=1e-12)
    assert fused["c"] == pytest.approx(0.0, abs=1e-12)
    assert fused["d"] == pytest.approx(0.7 / 0.8, abs=1e-12)


def test_weighted_z_score_and_ordering():
    config = FusionConfig(method="weighted", normalization="z-score", weights={"bm25": 1.0, "dense": 1.0, "sparse": 1.0})
    fused = fuse(RANKED, config)
    bm25 = [12.0, 9.0, 3.0]
    mean = sum(bm25) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in bm25) / 3)
    z_bm25 = {"a": (12 - mean) / std, "b": (9 - mean) / std, "c": (3 - mean) / std}
    dense = [0.9, 0.8, 0.1]
    dmean = sum(dense) / 3
    dstd = math.sqrt(sum((x - dmean) ** 2 for x in dense) / 3)
    z_dense = {"b": (0.9 - dmean) / dstd, "d": (0.8 - dmean) / dstd, "a": (0.1 - dmean) / dstd}
    expected = {
        "a": z_bm25["a"] + z_dense["a"],
        "b": z_bm25["b"] + z_dense["b"],
        "c": z_bm25["c"] + min(z_dense.values()),
        "d": min(z_bm25.values()) + z_dense["d"],
    }
    assert dict(fused) == pytest.approx(expected, abs=1e-12)
    assert [cid for cid, _ in fused] == sorted(expected, key=lambda c: -expected[c])


def test_zero_weight_removes_a_path():
    fused = fuse(RANKED, FusionConfig(method="rrf"), weights={"bm25": 1.0, "dense": 0.0})
    assert [cid for cid, _ in fused][:3] == ["a", "b", "c"]


def test_ties_break_by_best_rank_then_id():
    ranked = {"bm25": [("x", 1.0), ("y", 0.5)], "dense": [("y", 1.0), ("x", 0.5)]}
    fused = fuse(ranked, FusionConfig(method="rrf"))
    assert fused[0][1] == fused[1][1]
    assert [cid for cid, _ in fused] == ["x", "y"]


@pytest.mark.parametrize(
    ("method", "scores", "expected"),
    [
        ("min-max", [5.0, 5.0], [1.0, 1.0]),
        ("z-score", [2.0, 2.0], [0.0, 0.0]),
        ("none", [3.0, -1.0], [3.0, -1.0]),
        ("min-max", [], []),
    ],
)
def test_normalisation_edge_cases(method, scores, expected):
    assert normalize_scores(scores, method) == expected
