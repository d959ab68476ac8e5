"""Fusion against hand-computed values (tolerance 1e-12: pure float arithmetic)."""

import math

import pytest

from hybrid_search.config import FusionConfig
from hybrid_search.fusion import fuse, fuse_explained, normalize_scores, path_confidence

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


# --- adaptive fusion (the default for new collections) --------------------------------


def _hand_confidence(scores: list[float]) -> float:
    """1 - H(softmax(z)) / log(n), written out step by step."""
    n = len(scores)
    mean = sum(scores) / n
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / n)
    exps = [math.exp((s - mean) / std) for s in scores]
    probabilities = [e / sum(exps) for e in exps]
    return 1 - (-sum(p * math.log(p) for p in probabilities)) / math.log(n)


def test_adaptive_is_the_default_method():
    assert FusionConfig().method == "adaptive"
    assert FusionConfig().confidence_power == 2.0


def test_path_confidence_by_hand():
    # bm25 [12, 9, 3]: mean 8, std sqrt(14); z = (4, 1, -5) / sqrt(14).
    z = [4 / math.sqrt(14), 1 / math.sqrt(14), -5 / math.sqrt(14)]
    p = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
    expected = 1 - (-sum(x * math.log(x) for x in p)) / math.log(3)
    assert path_confidence([12.0, 9.0, 3.0]) == pytest.approx(expected, abs=1e-12)
    # A clear winner is more confident than an even spread.
    assert path_confidence([10.0, 1.0, 1.0, 1.0]) > path_confidence([4.0, 3.0, 2.0, 1.0]) > 0


def test_adaptive_matches_hand_computation():
    outcome = fuse_explained(RANKED, FusionConfig(method="adaptive", confidence_power=2.0))
    c_bm25, c_dense = _hand_confidence([12.0, 9.0, 3.0]), _hand_confidence([0.9, 0.8, 0.1])
    w_bm25 = c_bm25**2 / (c_bm25**2 + c_dense**2)
    w_dense = 1 - w_bm25
    assert outcome.weights == pytest.approx({"bm25": w_bm25, "dense": w_dense}, abs=1e-12)
    # min-max per path; a chunk a path did not return counts 0 there.
    expected = {
        "a": w_bm25 * 1.0 + w_dense * 0.0,
        "b": w_bm25 * (6 / 9) + w_dense * 1.0,
        "c": w_bm25 * 0.0,
        "d": w_dense * (0.7 / 0.8),
    }
    assert dict(outcome.ranked) == pytest.approx(expected, abs=1e-12)
    assert [cid for cid, _ in outcome.ranked] == sorted(expected, key=lambda c: -expected[c])
    assert fuse(RANKED, FusionConfig()) == outcome.ranked


def test_adaptive_power_zero_is_equal_weights():
    outcome = fuse_explained(RANKED, FusionConfig(confidence_power=0))
    assert outcome.weights == {"bm25": 0.5, "dense": 0.5}


def test_adaptive_priors_scale_and_zero_drops_a_path():
    c_bm25, c_dense = _hand_confidence([12.0, 9.0, 3.0]), _hand_confidence([0.9, 0.8, 0.1])
    outcome = fuse_explained(RANKED, FusionConfig(), weights={"bm25": 3.0, "dense": 1.0})
    expected_bm25 = 3 * c_bm25**2 / (3 * c_bm25**2 + c_dense**2)
    assert outcome.weights["bm25"] == pytest.approx(expected_bm25, abs=1e-12)
    dropped = fuse_explained(RANKED, FusionConfig(), weights={"bm25": 1.0, "dense": 0.0})
    assert dropped.weights == {"bm25": 1.0, "dense": 0.0}
    assert [cid for cid, _ in dropped.ranked] == ["a", "b", "c"]


def _assert_sane(outcome) -> None:
    values = [score for _, score in outcome.ranked] + list(outcome.weights.values())
    assert all(math.isfinite(v) for v in values)
    assert all(0.0 <= score <= 1.0 for _, score in outcome.ranked)
    assert sum(outcome.weights.values()) == pytest.approx(1.0, abs=1e-12)


def test_adaptive_path_without_candidates_gets_no_weight():
    ranked = {"bm25": [], "dense": [("b", 0.9), ("d", 0.8), ("a", 0.1)]}
    outcome = fuse_explained(ranked, FusionConfig())
    _assert_sane(outcome)
    assert outcome.weights == {"bm25": 0.0, "dense": 1.0}
    assert [cid for cid, _ in outcome.ranked] == ["b", "d", "a"]


def test_adaptive_all_equal_scores_cannot_dominate():
    # sparse returns many candidates, all scored alike: no evidence, no weight.
    flat = [(f"x{i}", 5.0) for i in range(50)]
    ranked = {"bm25": [("a", 12.0), ("b", 9.0), ("c", 3.0)], "sparse": flat}
    outcome = fuse_explained(ranked, FusionConfig())
    _assert_sane(outcome)
    assert outcome.weights["sparse"] == 0.0
    assert [cid for cid, _ in outcome.ranked[:2]] == ["a", "b"]
    assert all(score == 0.0 for cid, score in outcome.ranked if cid.startswith("x"))
    assert path_confidence([5.0] * 50) == 0.0


def test_adaptive_single_candidates_everywhere_share_equally():
    ranked = {"bm25": [("a", 3.0)], "sparse": [("b", 7.0)], "dense": []}
    outcome = fuse_explained(ranked, FusionConfig())
    _assert_sane(outcome)
    assert outcome.weights == {"bm25": 0.5, "sparse": 0.5, "dense": 0.0}
    assert dict(outcome.ranked) == {"a": 0.5, "b": 0.5}


def test_adaptive_no_candidates_at_all():
    outcome = fuse_explained({"bm25": [], "dense": []}, FusionConfig())
    assert outcome.ranked == []
    assert outcome.weights == {"bm25": 0.0, "dense": 0.0}


def test_adaptive_huge_and_tiny_scores_stay_finite():
    ranked = {"bm25": [("a", 1e300), ("b", -1e300)], "dense": [("a", 1e-300), ("c", 0.0)]}
    _assert_sane(fuse_explained(ranked, FusionConfig()))


@pytest.mark.parametrize("power", [-1, 17, float("nan"), True, "2"])
def test_confidence_power_is_checked(power):
    from hybrid_search.errors import ConfigError

    with pytest.raises(ConfigError, match="confidence_power"):
        FusionConfig(confidence_power=power)


def test_new_collections_record_adaptive_and_old_manifests_keep_theirs():
    from hybrid_search.config import CollectionConfig
    from hybrid_search.manifest import config_from_manifest as _config_from_manifest
    from hybrid_search.manifest import manifest_for as _manifest_for

    manifest = _manifest_for(CollectionConfig(name="kb", dense=None, sparse=None), None)
    assert manifest["fusion"]["method"] == "adaptive"
    assert manifest["fusion"]["confidence_power"] == 2.0
    # A manifest written before adaptive fusion existed names rrf and no power.
    old = dict(manifest, fusion={"method": "rrf", "rrf_k": 60, "normalization": "min-max", "weights": {"bm25": 1.0}})
    assert _config_from_manifest("kb", old).fusion.method == "rrf"
