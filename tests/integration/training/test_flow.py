"""The whole training flow on tiny models: data -> negatives -> dense -> sparse
-> reranker -> evaluate -> promote, through the same pipeline the CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_search.config import CollectionConfig, DenseEncoderConfig, RuntimeConfig, StoreConfig
from hybrid_search.engine import Engine, SearchOptions
from training.data import DataConfig, load_training_data
from training.embedder import DenseTrainConfig
from training.negatives import MiningConfig
from training.pipeline import BaseModels, EvalSettings, PipelineConfig, PromoteSettings, run_pipeline
from training.pseudo_queries import PseudoQueryConfig
from training.reranker import RerankerTrainConfig
from training.sparse import SparseTrainConfig

pytestmark = pytest.mark.integration


@pytest.mark.slow  # ~30 s; `adapt` (tests/integration/training/test_adapt*.py) runs the same stages in the default suite
def test_whole_flow_on_tiny_models(tiny_models, tiny_beir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    base_dense = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers")
    store = str(tmp_path / "serving.db")
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.create_collection(CollectionConfig(name="kb_v1", dense=base_dense, sparse=None))
        from training.data import load_beir

        engine.index("kb_v1", load_beir(tiny_beir, train_split=None, test_split=None).chunks)
        engine.switch_alias("kb", "kb_v1")

    out = tmp_path / "run"
    config = PipelineConfig(
        out=str(out),
        data=DataConfig(
            source="beir",
            path=str(tiny_beir),
            pseudo=PseudoQueryConfig(kinds=("inverse-cloze",), per_chunk=1, min_sentence_words=3, min_rest_words=5),
            dev_fraction=0.2,
        ),
        base=BaseModels(dense=base_dense),
        negatives=MiningConfig(num_negatives=3, depth=20, max_rank=10, device="cpu"),
        dense=DenseTrainConfig(base_model=str(tiny_models.dense), epochs=1, batch_size=8, num_negatives=2, learning_rate=1e-3, device="cpu"),
        sparse=SparseTrainConfig(
            base_model=str(tiny_models.dense),  # an encoder without M3 heads: they start untrained
            epochs=1,
            batch_size=4,
            group_size=3,
            passage_max_len=64,
            query_max_len=16,
            learning_rate=1e-3,
            device="cpu",
            collapse_min_spread=0.0,  # one tiny epoch cannot be asked to spread the weights much
        ),
        reranker=RerankerTrainConfig(base_model=str(tiny_models.dense), epochs=1, batch_size=8, num_negatives=3, max_length=96, device="cpu"),
        evaluation=EvalSettings(device="cpu", rerank_top_n=5, k=10, depth=20, max_queries=6, tune_first_stage_weight=True),
        promote=PromoteSettings(store_uri=store, alias="kb", force=True),  # tiny random models need not improve
    )
    summary = run_pipeline(config, progress=False)

    data = load_training_data(out / "data")
    test_ids = {f"{d}#0" for d in data.split.test}
    mined = [json.loads(line) for line in (out / "data" / "train_negatives.jsonl").read_text().splitlines()]
    assert mined and all(len(e["neg"]) == 3 for e in mined)
    assert not any(set(e["neg_ids"]) & (test_ids | set(e["pos_ids"])) for e in mined)  # no test chunk, no positive
    stats = json.loads((out / "data" / "negatives.json").read_text())["stats"]
    assert stats["queries"] == len(mined) and stats["labelled_positives_in_results"] > 0

    for stage in ("dense", "sparse", "reranker"):
        manifest = json.loads((out / stage / "run.json").read_text())
        assert manifest["status"] == "finished" and manifest["seed"] == 42 and len(manifest["data_sha256"]) == 64
        assert (out / stage / "model").is_dir()
    assert {"sparse_linear.pt", "colbert_linear.pt"} <= {p.name for p in (out / "sparse" / "model").iterdir()}
    assert json.loads((out / "sparse" / "collapse_check.json").read_text())["collapsed"] is False
    assert "dev_before" in summary["stages"]["dense"] and "dev_after" in summary["stages"]["dense"]

    report = json.loads((out / "evaluation" / "evaluation.json").read_text())
    tuned = report["results"]["tuned"]
    assert set(tuned) == {"bm25", "sparse", "dense", "hybrid", "hybrid+rerank"}
    assert set(report["results"]["base"]) == {"bm25", "dense", "hybrid"}
    assert set(report["results"]["base-reranked"]) == {"bm25+rerank", "hybrid+rerank"}
    assert set(report["results"]["sparse-untrained"]) == {"sparse"}
    assert 0.0 <= tuned["hybrid+rerank"]["ndcg@10"] <= 1.0 and report["queries"] == 6
    assert report["decision"]["candidate"]["row"] == "hybrid+rerank"
    # Paired tests: every row both systems have, and the gate's pair (base hybrid -> tuned hybrid+rerank).
    assert set(report["significance"]) == {"bm25", "dense", "hybrid", "hybrid -> hybrid+rerank"}
    gate_test = report["significance"]["hybrid -> hybrid+rerank"]
    assert gate_test["queries"] == 6 and 0.0 < gate_test["p_value"] <= 1.0 and report["decision"]["p_value"] == gate_test["p_value"]
    assert report["significance"]["bm25"]["delta"] == 0.0 and report["significance"]["bm25"]["p_value"] == 1.0  # BM25 is untouched by training
    # The reranked rows were served with a first-stage weight chosen on the dev queries.
    for system, rows in (("tuned", {"hybrid+rerank"}), ("base-reranked", {"bm25+rerank", "hybrid+rerank"})):
        assert set(report["first_stage_weights"][system]) == rows
        for tuning in report["first_stage_weights"][system].values():
            assert tuning["chosen"] in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0) and len(tuning["dev"]) == 11
            assert tuning["dev"][str(tuning["chosen"])] == max(tuning["dev"].values()) and tuning["dev_queries"] == len(data.dev) > 0
    assert (out / "evaluation" / "evaluation.md").read_text().startswith("## Before/after evaluation")

    promoted = summary["stages"]["promote"]
    assert promoted["collection"] == "kb_v2" and promoted["previous"] == "kb_v1"
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        result = engine.search("kb", "cat sat mat", SearchOptions(k=3))
        assert result.collection == "kb_v2" and result.paths == ("bm25", "sparse", "dense") and result.hits
        assert engine.collection_info("kb").chunks == len(data.corpus)

    # Re-running resumes: finished stages are skipped, not retrained.
    finished = {stage: json.loads((out / stage / "run.json").read_text())["finished_at"] for stage in ("dense", "sparse", "reranker")}
    run_pipeline(PipelineConfig(**{**config.__dict__, "promote": None}), progress=False)
    assert finished == {stage: json.loads((out / stage / "run.json").read_text())["finished_at"] for stage in finished}
