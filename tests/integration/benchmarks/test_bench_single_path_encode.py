"""The speed benchmark's single-path encoding check runs through Engine.search
(one path at a time) and the path's own encoder on the same queries."""

from __future__ import annotations

import pytest

from benchmarks.report import environment
from benchmarks.speed import single_path_encode, speed_markdown
from hybrid_search import (
    Chunk,
    Engine,
    RuntimeConfig,
    StoreConfig,
)

pytestmark = pytest.mark.integration


def test_single_path_encode_times_each_encoded_path(tiny_models, tmp_path):
    with Engine(StoreConfig(uri=str(tmp_path / "speed.db")), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.create_collection(tiny_models.hybrid_collection("speed"))
        engine.index("speed", [Chunk(doc_id=f"d{i}", chunk_index=0, text=f"cats and dogs number {i}") for i in range(5)])
        queries = ["cats", "dogs in the garden", "number three"]
        out = single_path_encode(engine, "speed", queries, "cpu")
    assert set(out) == {"dense", "sparse"}
    for timed in out.values():
        assert timed["engine_encode_ms"]["n"] == timed["encoder_alone_ms"]["n"] == len(queries)
        assert timed["ratio_p50"] == pytest.approx(timed["engine_encode_ms"]["p50"] / timed["encoder_alone_ms"]["p50"])
    data = {
        "dataset": {"name": "tiny", "queries": 3, "docs": 5, "mean_doc_chars": 20.0},
        "encoders": [],
        "pipeline_vs_bare": {"cpu": {"chunks": 5, "paths": ["bm25", "sparse", "dense"], "bare_encoder_docs_per_s": 1.0, "pipeline_docs_per_s": 1.0, "ratio_pipeline_to_bare": 1.0, "single_path_encode": out}},
        "stage_latency": {},
        "environment": environment(),
    }
    text = speed_markdown(data)
    assert "Single-path query encoding" in text and "| cpu | dense |" in text
