"""Run manifests, resume semantics and config files."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from hybrid_search.config import DenseEncoderConfig
from hybrid_search.errors import ConfigError
from training.embedder import DenseTrainConfig
from training.pipeline import EvalSettings, PipelineConfig, load_pipeline_config
from training.reranker import RerankerTrainConfig
from training.runs import begin_run, config_from_plain, fail_run, finish_run, last_checkpoint, read_manifest
from training.sparse import SparseTrainConfig

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class _Config:
    lr: float = 1e-5


def test_run_manifest_records_what_ran_and_skips_a_finished_run(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text('{"query": "q", "pos": ["p"]}\n')
    run = tmp_path / "run"
    manifest, done = begin_run(run, stage="dense", config=_Config(), data_files=[data], seed=3, device="cpu")
    assert not done
    saved = json.loads((run / "run.json").read_text())
    assert saved["status"] == "running" and saved["seed"] == 3 and saved["config"] == {"lr": 1e-5}
    assert len(saved["data_sha256"]) == 64
    assert "git_revision" in saved and saved["packages"]["torch"]
    (run / "model").mkdir()
    finish_run(run, manifest, {"ndcg": 0.5})
    again, done = begin_run(run, stage="dense", config=_Config(), data_files=[data], seed=3)
    assert done and again.metrics == {"ndcg": 0.5}


def test_a_different_config_or_data_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("a\n")
    run = tmp_path / "run"
    begin_run(run, stage="dense", config=_Config(), data_files=[data], seed=1)
    with pytest.raises(ConfigError, match="config"):
        begin_run(run, stage="dense", config=_Config(lr=2e-5), data_files=[data], seed=1)
    data.write_text("b\n")
    with pytest.raises(ConfigError, match="training data"):
        begin_run(run, stage="dense", config=_Config(), data_files=[data], seed=1)


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.write_text("x")
    run = tmp_path / "run"
    manifest, _ = begin_run(run, stage="sparse", config=_Config(), data_files=[data], seed=1)
    fail_run(run, manifest, RuntimeError("power cut"))
    assert read_manifest(run).status == "failed"  # type: ignore[union-attr]
    for step in (10, 20):
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
    assert last_checkpoint(run).endswith("checkpoint-20")  # type: ignore[union-attr]
    manifest, done = begin_run(run, stage="sparse", config=_Config(), data_files=[data], seed=1)
    assert not done and manifest.resumed_from.endswith("checkpoint-20")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name",
    [
        "nvidia_sec_10k.toml",
        "scifact_label_free.toml",
        "nvidia_sec_10k_sparse.toml",
        "scifact_label_free_sparse.toml",
        "nvidia_sec_10k_dense512.toml",
        "nvidia_sec_10k_reranker_cpu.toml",
    ],
)
def test_committed_benchmark_configs_load(name: str, tmp_path: Path) -> None:
    config = load_pipeline_config(REPO / "benchmarks" / "results" / "training" / name, out="/tmp/x", data_path=tmp_path)
    assert isinstance(config, PipelineConfig) and config.out == "/tmp/x"
    assert config.base.dense and config.base.dense.kind == "sentence-transformers"
    if name.endswith("_sparse.toml"):
        assert config.sparse and config.sparse.objective == "sparse-only" and not config.sparse.train_encoder
        assert config.dense is None and config.reranker is None
        return
    if name.endswith("_reranker_cpu.toml"):
        # Reranker only; the engine scores the windows it was trained on, and w is chosen on dev.
        assert config.reranker and config.reranker.long_passages == "max-window" and config.reranker.max_length == 128
        assert config.dense is None and config.sparse is None and config.evaluation.tune_first_stage_weight
        return
    assert config.dense is not None
    if name.endswith("_dense512.toml"):
        # Base and fine-tuned dense are compared at the same input length.
        assert config.base.dense.max_length == config.dense.max_seq_length == 512
        assert config.sparse is None and config.reranker is None
        return
    if name.startswith("nvidia"):
        assert config.sparse and config.reranker and config.data.use_labels
    else:
        assert not config.data.use_labels and config.data.pseudo is not None  # label-free


def test_config_from_plain_builds_nested_configs_and_refuses_unknown_keys() -> None:
    dense = config_from_plain(DenseEncoderConfig, {"model": "m", "kind": "sentence-transformers"})
    assert dense.model == "m"
    with pytest.raises(ConfigError, match="unknown setting"):
        config_from_plain(DenseTrainConfig, {"base_model": "m", "epoch": 3})
    with pytest.raises(ConfigError, match="loss"):
        config_from_plain(DenseTrainConfig, {"base_model": "m", "loss": "triplet"})
    trained = config_from_plain(DenseTrainConfig, {"base_model": "m", "matryoshka_dims": [256, 128]})
    assert trained.matryoshka_dims == (256, 128)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: DenseTrainConfig(base_model="m", batch_size=1), "batch_size"),
        (lambda: DenseTrainConfig(base_model="m", matryoshka_dims=(64, 128)), "largest first"),
        (lambda: DenseTrainConfig(base_model="m", device="tpu"), "device"),  # type: ignore[arg-type]
        (lambda: SparseTrainConfig(base_model="m", group_size=1), "group_size"),
        (lambda: SparseTrainConfig(base_model="m", colbert=False, mode="subprocess"), "in-process"),
        (lambda: RerankerTrainConfig(base_model="m", loss="hinge"), "loss"),  # type: ignore[arg-type]
        (lambda: RerankerTrainConfig(base_model=""), "base_model"),
        (lambda: EvalSettings(rerank_first_stage_weight=1.5), "rerank_first_stage_weight"),
    ],
)
def test_training_configs_validate(factory, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=message):
        factory()


def test_evaluation_systems_swap_in_trained_parts_and_add_controls(tmp_path: Path) -> None:
    from training.pipeline import systems_for

    config = load_pipeline_config(REPO / "benchmarks" / "results" / "training" / "nvidia_sec_10k.toml", out="/tmp/x", data_path=tmp_path)
    trained = {"dense": Path("d"), "sparse": Path("s"), "reranker": Path("r"), "sparse-start": Path("s0")}
    systems = {s.name: s for s in systems_for(config, trained)}
    assert systems["base"].dense == config.base.dense and systems["base"].reranker is None
    tuned = systems["tuned"]
    assert (tuned.dense.model, tuned.dense.kind) == ("d", "sentence-transformers")  # type: ignore[union-attr]
    assert (tuned.sparse.model, tuned.sparse.kind, tuned.sparse.max_length) == ("s", "bge-m3", 256)  # type: ignore[union-attr]
    assert tuned.reranker.model == "r" and tuned.served == "hybrid+rerank"  # type: ignore[union-attr]
    assert systems["base-reranked"].rows == ("bm25+rerank", "hybrid+rerank")
    assert systems["sparse-untrained"].sparse.model == "s0"  # type: ignore[union-attr]
    assert tuned.reranker.first_stage_weight == 0.0  # type: ignore[union-attr]
    weighted = replace(config, evaluation=replace(config.evaluation, rerank_first_stage_weight=0.3))
    assert {s.name: s for s in systems_for(weighted, trained)}["tuned"].reranker.first_stage_weight == 0.3  # type: ignore[union-attr]
    only_dense = {s.name for s in systems_for(config, {"dense": Path("d")})}
    assert only_dense == {"base", "tuned"}
