"""Promotion: refuse a worse model unless forced, re-embed, switch the alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_search.config import (
    CollectionConfig,
    DenseEncoderConfig,
    RuntimeConfig,
    StoreConfig,
    to_plain,
)
from hybrid_search.engine import Engine, SearchOptions
from hybrid_search.errors import InputError
from hybrid_search.types import Chunk
from tests.training_fixtures import gate_report
from training.evaluate import EvaluationReport
from training.promote import PromotionRefused, promote, retire_version

pytestmark = pytest.mark.integration

TEXTS = [
    "The cat sat on the mat.",
    "A dog chased the cat around the garden.",
    "Milvus is an open source vector database built for similarity search.",
    "Hybrid search combines dense retrieval with sparse lexical retrieval.",
    "The company reported record revenue and profit in the fourth quarter.",
    "Quarterly revenue grew twelve percent while operating costs fell.",
]


def _report(better: bool, dense_model: str, **dense: object) -> EvaluationReport:
    evaluated = to_plain(DenseEncoderConfig(model=dense_model, kind="sentence-transformers", **dense))  # type: ignore[arg-type]
    return gate_report({"dense": evaluated, "sparse": None}, better=better)


def test_promotion_gate_and_alias_switch(tiny_models, tmp_path: Path) -> None:
    old = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers")
    new_model = str(tiny_models.m3)  # another real model: a BERT folder sentence-transformers can load
    new = DenseEncoderConfig(model=new_model, kind="sentence-transformers")
    with Engine(StoreConfig(uri=str(tmp_path / "kb.db")), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.create_collection(CollectionConfig(name="kb_v1", dense=old, sparse=None))
        engine.index("kb_v1", [Chunk(doc_id=f"d{i}", chunk_index=0, text=t, title=f"t{i}") for i, t in enumerate(TEXTS)])
        engine.switch_alias("kb", "kb_v1")

        with pytest.raises(PromotionRefused, match="not better"):
            promote(engine, "kb", dense=new, evaluation=_report(False, new_model), progress=False)
        with pytest.raises(PromotionRefused, match="no evaluation"):
            promote(engine, "kb", dense=new, progress=False)
        with pytest.raises(PromotionRefused, match="model 'some/other-model' \\(evaluated\\) vs"):
            promote(engine, "kb", dense=new, evaluation=_report(True, "some/other-model"), progress=False)
        # Same model, other prompt: not what was measured either.
        with pytest.raises(PromotionRefused, match="query_prompt 'query: ' \\(evaluated\\) vs None"):
            promote(engine, "kb", dense=new, evaluation=_report(True, new_model, query_prompt="query: "), progress=False)
        assert engine.resolve("kb") == "kb_v1" and engine.list_collections() == ["kb_v1"]

        result = promote(engine, "kb", dense=new, evaluation=_report(False, new_model), force=True, progress=False)
        assert (result.previous, result.collection, result.chunks, result.forced) == ("kb_v1", "kb_v2", 6, True)
        assert engine.resolve("kb") == "kb_v2"
        hits = engine.search("kb", "cat mat", SearchOptions(k=3))
        assert hits.collection == "kb_v2" and hits.hits
        assert engine.open_collection("kb_v2").dense == new
        assert engine.get_document("kb", "d0")[0].title == "t0"  # rows copied whole
        assert "kb_v1" in engine.list_collections()  # the old version stays until retired

        result = promote(engine, "kb", dense=old, evaluation=_report(True, str(tiny_models.dense)), progress=False)
        assert result.collection == "kb_v3" and engine.resolve("kb") == "kb_v3" and result.gain == pytest.approx(0.1)

        with pytest.raises(InputError, match="serves now"):
            retire_version(engine, "kb", "kb_v3")
        retire_version(engine, "kb", "kb_v1")
        assert sorted(engine.list_collections()) == ["kb_v2", "kb_v3"]


def test_first_promotion_of_a_plain_collection(tiny_models, tmp_path: Path) -> None:
    dense = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers")
    with Engine(StoreConfig(uri=str(tmp_path / "kb.db")), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.create_collection(CollectionConfig(name="docs", dense=dense, sparse=None))
        engine.index("docs", [Chunk(doc_id="a", chunk_index=0, text=TEXTS[0])])
        with pytest.raises(InputError, match="not an alias"):
            promote(engine, "docs", dense=dense, force=True, progress=False)
        with pytest.raises(InputError, match="source"):
            promote(engine, "live", dense=dense, force=True, progress=False)
        result = promote(engine, "live", dense=dense, source="docs", force=True, progress=False)
        assert (result.previous, result.collection) == ("docs", "live_v1")
        assert engine.search("live", "cat", SearchOptions(k=1)).collection == "live_v1"
