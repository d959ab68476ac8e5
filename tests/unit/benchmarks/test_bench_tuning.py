"""Fusion tuning: the grid, selection, and never losing to the best single path."""

from __future__ import annotations

import random

import pytest

from benchmarks.beir import kfold
from benchmarks.tuning import Setting, cross_validate, fused_list, grid, score_matrix, select, setting_from_plain
from hybrid_search.config import FusionConfig

pytestmark = pytest.mark.unit

PATHS = ["bm25", "sparse", "dense"]
# The full grid has 351 settings; every tenth keeps the tests fast and still
# holds the three single paths (the first three) and both fusion methods.
SMALL_GRID = grid(PATHS)[:3] + grid(PATHS)[3::10]


def test_grid_contents() -> None:
    settings = grid(PATHS)
    assert settings[:3] == [Setting((p,), None) for p in PATHS]
    fused = [s for s in settings if s.fusion is not None]
    assert {s.fusion.method for s in fused} == {"rrf", "weighted"}
    assert {s.fusion.rrf_k for s in fused if s.fusion.method == "rrf"} == {10, 30, 60, 100}
    assert {s.fusion.normalization for s in fused if s.fusion.method == "weighted"} == {"min-max", "z-score"}
    for s in fused:
        assert len(s.paths) >= 2
        assert sum(s.fusion.weights.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(s.fusion.weights) == set(PATHS)  # zero weights are explicit, so a stored default drops the path
        assert all((s.fusion.weights[p] > 0) == (p in s.paths) for p in PATHS)
    assert len({s.describe() for s in settings}) == len(settings)


def _synthetic(seed: int, n_queries: int = 16):
    """Three paths of different quality: bm25 good, sparse middling, dense noisy."""
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(200)]
    qrels, candidates = {}, {p: {} for p in PATHS}
    for q in range(n_queries):
        qid = f"q{q}"
        relevant = rng.sample(docs, 3)
        qrels[qid] = {d: 1 for d in relevant}
        for path, skill in (("bm25", 0.7), ("sparse", 0.4), ("dense", 0.2)):
            pool = rng.sample(docs, 100)
            ranked = [d for d in pool if d not in relevant]
            for d in relevant:
                if rng.random() < skill + 0.2:
                    ranked.insert(rng.randint(0, 3 if rng.random() < skill else 60), d)
            ranked = ranked[:100]
            candidates[path][qid] = [(f"{d}#0", 10.0 - i * 0.05 + rng.random() * 0.01) for i, d in enumerate(ranked)]
            candidates[path][qid].sort(key=lambda x: -x[1])
    return qrels, candidates


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tuned_is_never_worse_than_best_single_on_its_tuning_split(seed: int) -> None:
    qrels, candidates = _synthetic(seed)
    qids = sorted(qrels)
    settings = SMALL_GRID
    matrix = score_matrix(candidates, qrels, qids, settings)
    best, means = select(settings, matrix)
    single_best = max(means[:3])
    assert means[best] >= single_best - 1e-12
    # and the selected setting really scores that (recomputed from scratch)
    again = score_matrix(candidates, qrels, qids, [settings[best]])
    assert again[0].mean() == pytest.approx(means[best])


def test_single_path_setting_is_the_path_itself() -> None:
    _, candidates = _synthetic(5, n_queries=3)
    for p in PATHS:
        assert fused_list(candidates, "q0", Setting((p,), None)) == candidates[p]["q0"]
    rrf = Setting(("bm25", "dense"), FusionConfig(method="rrf", rrf_k=60, weights={"bm25": 0.5, "sparse": 0.0, "dense": 0.5}))
    fused = fused_list(candidates, "q0", rrf, k=100)
    assert len(fused) == 100
    assert {cid for cid, _ in fused} <= {cid for p in ("bm25", "dense") for cid, _ in candidates[p]["q0"]}


def test_cross_validation_scores_each_fold_with_a_setting_tuned_elsewhere() -> None:
    qrels, candidates = _synthetic(7)
    qids = sorted(qrels)
    settings = SMALL_GRID
    matrix = score_matrix(candidates, qrels, qids, settings)
    folds = kfold(qids, 4)
    result = cross_validate(settings, matrix, qids, folds)
    assert [r["queries"] for r in result] == folds
    position = {q: j for j, q in enumerate(qids)}
    for r in result:
        others = [position[q] for q in qids if q not in set(r["queries"])]
        best, means = select(settings, matrix, others)
        assert r["setting"] == settings[best]
        assert r["tuning_ndcg@10"] == pytest.approx(means[best])


def test_setting_round_trip() -> None:
    s = Setting(
        ("bm25", "dense"),
        FusionConfig(method="weighted", normalization="z-score", weights={"bm25": 0.8, "sparse": 0.0, "dense": 0.2}),
    )
    assert setting_from_plain(s.to_plain()) == s
    assert setting_from_plain(Setting(("bm25",), None).to_plain()) == Setting(("bm25",), None)
    default = Setting(("dense",), None).default_fusion(PATHS)
    assert default.weights == {"bm25": 0.0, "sparse": 0.0, "dense": 1.0}
