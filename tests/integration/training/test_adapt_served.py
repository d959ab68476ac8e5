"""`adapt` with the candidates that need no re-embedding, end to end on tiny
models: fusion re-tuned on dev and a linear query adapter, chosen on dev,
gated on test, promoted with the stored vectors copied and the chosen fusion
served; the engine applies the adapter to query vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybrid_search.config import (
    CollectionConfig,
    DenseEncoderConfig,
    FusionConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
)
from hybrid_search.engine import Engine
from hybrid_search.errors import ManifestMismatchError
from hybrid_search.plan import SearchOptions
from hybrid_search.query_adapter import save_query_adapter
from tests.training_fixtures import release_milvus_lite_servers  # noqa: F401 - autouse fixture
from training.adapt import AdaptConfig, run_adapt
from training.adapter import AdapterTrainConfig
from training.data import load_beir

pytestmark = pytest.mark.integration

FAST = {"depth": 20, "k": 20, "device": "cpu", "dev_fraction": 0.3, "test_fraction": 0.3, "adapter": AdapterTrainConfig(epochs=3, batch_size=8)}


def _served(tiny_models, tiny_beir: Path, tmp_path: Path, adapter: str | None = None) -> tuple[str, DenseEncoderConfig]:
    store = str(tmp_path / "serving.db")
    dense = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers", query_adapter=adapter)
    sparse = SparseEncoderConfig(model=str(tiny_models.splade), kind="splade")
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.create_collection(CollectionConfig(name="kb_v1", dense=dense, sparse=sparse))
        engine.index("kb_v1", load_beir(tiny_beir, train_split=None, test_split=None).chunks)
        engine.switch_alias("kb", "kb_v1")
    return store, dense


def _questions(tiny_beir: Path, tmp_path: Path) -> Path:
    queries = {row["_id"]: row["text"] for row in map(json.loads, (tiny_beir / "queries.jsonl").read_text().splitlines())}
    lines = []
    for split in ("train", "test"):
        for line in (tiny_beir / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
            query_id, doc_id, _ = line.split("\t")
            lines.append(json.dumps({"query": queries[query_id], "doc_ids": [doc_id]}))
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _dense_vectors(engine: Engine, collection: str) -> dict[str, list[float]]:
    return {row["id"]: row["dense"] for row in engine.store.iterate(collection, "", ["id", "dense"])}


def test_adapter_and_fusion_are_chosen_on_dev_promoted_without_reembedding(tiny_models, tiny_beir: Path, tmp_path: Path, capsys) -> None:
    store, _ = _served(tiny_models, tiny_beir, tmp_path)
    run = tmp_path / "run"
    # A gate that passes whatever tiny models do, so promotion itself is exercised.
    config = AdaptConfig(collection="kb", run_dir=str(run), questions=str(_questions(tiny_beir, tmp_path)), candidates=("adapter",),
                         min_gain=-1.0, max_p_value=None, **FAST)
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        result = run_adapt(engine, config)
    out = capsys.readouterr().out
    for stage in ("[1/4] data (labelled questions)", "[2/4] adapter", "[3/4] choose", "[4/4] promote"):
        assert stage in out
    assert "epoch 0 (identity): dev dense nDCG@10" in out and "epoch 3/3" in out and "chose adapter" in out
    assert result.promoted and result.promotion is not None and result.promotion["collection"] == "kb_v2"
    assert result.decision["chosen"]["name"] == "adapter" and "adapter" in result.decision["dev"]
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        assert engine.resolve("kb") == "kb_v2"
        served = engine.open_collection("kb")
        assert served.dense is not None and served.dense.query_adapter == str((run / "adapter").resolve())
        # The adapter acts on queries only: the chunk vectors were copied, not computed again.
        assert _dense_vectors(engine, "kb_v2") == _dense_vectors(engine, "kb_v1")
        # The fusion chosen with it is what the alias serves.
        assert served.fusion == FusionConfig(**result.promotion["fusion"])
        engine.search("kb", "cats", SearchOptions(k=3))
    assert (run / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Finished: a re-run reports the same result and promotes nothing more.
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        again = run_adapt(engine, config, progress=False)
        assert engine.list_collections() == ["kb_v1", "kb_v2"]
    assert (again.promoted, again.decision) == (result.promoted, result.decision)


def test_fusion_chosen_on_dev_is_carried_to_the_alias(tiny_models, tiny_beir: Path, tmp_path: Path) -> None:
    store, _ = _served(tiny_models, tiny_beir, tmp_path)
    questions = str(_questions(tiny_beir, tmp_path))
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.set_fusion_defaults("kb", FusionConfig(method="rrf", rrf_k=60, weights={"bm25": 0.0, "sparse": 0.0, "dense": 1.0}))
        config = AdaptConfig(collection="kb", run_dir=str(tmp_path / "run"), questions=questions, candidates=("fusion",),
                             min_gain=-1.0, max_p_value=None, **FAST)
        result = run_adapt(engine, config, progress=False)
        decision = result.decision
        assert decision["chosen"]["name"] == "fusion"
        if result.promoted:
            # No new version: the collection in service serves the fusion tuned on dev.
            assert engine.resolve("kb") == "kb_v1"
            assert engine.open_collection("kb").fusion == FusionConfig(**decision["chosen"]["fusion"])
        else:
            assert decision.get("refused_on_dev") and "no candidate beats it on dev" in result.reason
    # The tuned fusion is never worse on dev than the one in service (it is in the grid).
    assert decision["dev"]["fusion"] >= decision["dev"]["before"]


def test_engine_applies_the_served_adapter_and_refuses_a_mismatched_one(tiny_models, tiny_beir: Path, tmp_path: Path) -> None:
    with Engine(StoreConfig(uri=str(tmp_path / "probe.db")), runtime=RuntimeConfig(device="cpu")) as engine:
        probe = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers")
        engine.create_collection(CollectionConfig(name="probe", dense=probe, sparse=None))
        dim = engine.encoders("probe").dense.dim
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(dim, dim)))
    folder = save_query_adapter(tmp_path / "adapter", rotation, base_model=str(tiny_models.dense))
    store, _ = _served(tiny_models, tiny_beir, tmp_path, adapter=str(folder))
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        encoders = engine.encoders("kb")
        base = encoders.dense.base.encode_queries(["black cats"])
        expected = base @ rotation.T
        np.testing.assert_allclose(encoders.encode_queries(["black cats"], sparse=False)[0], expected / np.linalg.norm(expected), atol=1e-5)
        # Documents keep the base model's vectors.
        np.testing.assert_allclose(encoders.encode_documents(["black cats"])[0], encoders.dense.base.encode_documents(["black cats"]), atol=1e-6)
    wrong = save_query_adapter(tmp_path / "wrong", np.eye(dim), base_model="another-model")
    with Engine(StoreConfig(uri=str(tmp_path / "wrong.db")), runtime=RuntimeConfig(device="cpu")) as engine, pytest.raises(ManifestMismatchError, match="another-model"):
        bad = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers", query_adapter=str(wrong))
        engine.create_collection(CollectionConfig(name="bad", dense=bad, sparse=None))
        engine.encoders("bad")


def test_label_free_adapt_gates_the_adapter_on_held_out_pseudo_queries(tiny_models, tiny_beir: Path, tmp_path: Path, capsys) -> None:
    from training.pseudo_queries import PseudoQueryConfig

    store, _ = _served(tiny_models, tiny_beir, tmp_path)
    pseudo = PseudoQueryConfig(kinds=("inverse-cloze",), per_chunk=1, min_sentence_words=3, min_rest_words=5)
    config = AdaptConfig(collection="kb", run_dir=str(tmp_path / "run"), pseudo=pseudo, **FAST)
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        result = run_adapt(engine, config)
        served = engine.resolve("kb")
    out = capsys.readouterr().out
    assert "[1/4] data (pseudo-queries, no labels)" in out and "fusion not re-tuned" in out
    tests = [json.loads(line) for line in (tmp_path / "run" / "data" / "test.jsonl").read_text().splitlines()]
    assert tests and all(q["source"] == "inverse-cloze" for q in tests)  # judged on held-out pseudo-queries only
    decision = result.decision
    assert set(decision["dev"]) == {"before", "adapter"}  # no fusion candidate without labels
    # Promoted exactly when dev and the test gate (p <= 0.05) both said better.
    assert result.promoted == (decision["better"] and not decision.get("refused_on_dev"))
    assert served == ("kb_v2" if result.promoted else "kb_v1")
    if not result.promoted:
        assert result.reason.startswith("kept the served configuration")
