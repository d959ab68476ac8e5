"""Offline fusion of cached per-path candidates (what `tune` grid-searches)
gives exactly what Engine.search returns for the same setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.beir import load_beir
from benchmarks.indexes import IndexSpec, open_index
from benchmarks.runs import path_candidates
from benchmarks.tuning import Setting, fused_list, grid
from hybrid_search import SearchOptions
from hybrid_search.config import AnalyzerConfig, DenseEncoderConfig, FusionConfig, RuntimeConfig, SparseEncoderConfig

pytestmark = pytest.mark.integration

PATHS = ("bm25", "sparse", "dense")


@pytest.fixture(scope="module")
def opened(beir_set: Path, tiny_models, tmp_path_factory: pytest.TempPathFactory):
    spec = IndexSpec(
        dataset=load_beir(beir_set),
        dense=DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"),
        sparse=SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"),
        analyzer=AnalyzerConfig(language="en"),
    )
    cache = tmp_path_factory.mktemp("cache")
    index = open_index(spec, cache=cache, runtime=RuntimeConfig(device="cpu"), log=lambda _m: None)
    yield index, cache
    index.engine.close()


def test_index_is_built_once_and_reused(opened, tiny_models) -> None:
    index, cache = opened
    assert not index.reused and index.meta["chunks"] == 20
    again = open_index(index.spec, cache=cache, runtime=RuntimeConfig(device="cpu"), log=lambda _m: None)
    try:
        assert again.reused and again.uri == index.uri
    finally:
        again.engine.close()


def test_offline_fusion_equals_engine_search(opened) -> None:
    index, cache = opened
    queries, _ = index.spec.dataset.split("test")
    queries = dict(sorted(queries.items())[:5])
    candidates = {p: path_candidates(index, queries, p, split="test", depth=100, cache=cache, log=lambda _m: None) for p in PATHS}
    all_settings = grid(list(PATHS))
    chosen = [
        Setting(("bm25", "sparse", "dense"), FusionConfig(method="rrf", rrf_k=60, weights={p: 1.0 for p in PATHS})),
        Setting(("bm25", "dense"), FusionConfig(method="rrf", rrf_k=10, weights={"bm25": 0.8, "sparse": 0.0, "dense": 0.2})),
        Setting(
            ("bm25", "dense"),
            FusionConfig(method="weighted", normalization="min-max", weights={"bm25": 0.8, "sparse": 0.0, "dense": 0.2}),
        ),
        Setting(
            ("sparse", "dense"),
            FusionConfig(method="weighted", normalization="z-score", weights={"bm25": 0.0, "sparse": 2.0, "dense": 1.0}),
        ),
        Setting(("dense",), None),
        *all_settings[3::150],
    ]
    compared = 0
    for setting in chosen:
        for qid, text in queries.items():
            result = index.engine.search(
                index.collection, text, SearchOptions(k=100, paths=setting.paths, depth=100, fusion=setting.fusion)
            )
            engine_list = [(hit.chunk_id, hit.fused_score) for hit in result.hits]
            offline = fused_list(candidates, qid, setting, k=100)
            assert [cid for cid, _ in engine_list] == [cid for cid, _ in offline], (setting.describe(), qid)
            assert [s for _, s in engine_list] == pytest.approx([s for _, s in offline], rel=1e-9, abs=1e-12)
            compared += 1
    assert compared == len(chosen) * len(queries)


def test_cached_candidates_are_reused(opened) -> None:
    index, cache = opened
    queries, _ = index.spec.dataset.split("test")
    queries = dict(sorted(queries.items())[:5])  # the queries the equality test cached
    messages: list[str] = []
    path_candidates(index, queries, "bm25", split="test", depth=100, cache=cache, log=messages.append)
    assert not messages  # everything came from the cache file
