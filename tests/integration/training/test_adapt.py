"""`adapt` end to end on tiny models: a collection in Milvus Lite -> data ->
negatives -> dense fine-tuning -> before/after -> gate -> promotion or refusal;
labelled and label-free, and a run interrupted after training that resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_search.config import (
    CollectionConfig,
    DenseEncoderConfig,
    RuntimeConfig,
    StoreConfig,
)
from hybrid_search.engine import Engine
from hybrid_search.errors import ConfigError, InputError
from tests.training_fixtures import release_milvus_lite_servers  # noqa: F401 - autouse fixture
from training import adapt as adapt_module
from training.adapt import AdaptConfig, parse_budget, run_adapt
from training.data import load_beir
from training.pseudo_queries import PseudoQueryConfig

pytestmark = pytest.mark.integration

# Tiny random models on 18 short documents: seconds per stage.
FAST = {"candidates": ("dense",), "epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "num_negatives": 2, "depth": 20, "k": 10, "device": "cpu", "max_seq_length": 64, "dev_fraction": 0.25}
PSEUDO = PseudoQueryConfig(kinds=("inverse-cloze",), per_chunk=1, min_sentence_words=3, min_rest_words=5)


def _served(tiny_models, tiny_beir: Path, tmp_path: Path) -> str:
    store = str(tmp_path / "serving.db")
    dense = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers")
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.create_collection(CollectionConfig(name="kb_v1", dense=dense, sparse=None))
        engine.index("kb_v1", load_beir(tiny_beir, train_split=None, test_split=None).chunks)
        engine.switch_alias("kb", "kb_v1")
    return store


def _check_outcome(store: str, run: Path, result) -> None:
    """Promoted exactly when the gate passed, and the alias says so."""
    report = json.loads((run / "evaluation" / "evaluation.json").read_text())
    assert result.decision == report["decision"]
    assert report["decision"]["baseline"]["system"] == "before" and report["decision"]["candidate"]["system"] == "after"
    assert result.promoted == report["decision"]["better"]
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        assert engine.resolve("kb") == ("kb_v2" if result.promoted else "kb_v1")
    if not result.promoted:
        assert result.reason.startswith("kept the served configuration") and "does not pass the gate" in result.reason
    manifest = json.loads((run / "adapt.json").read_text())
    assert manifest["status"] == "finished" and manifest["base"]["collection"] == "kb_v1"
    assert manifest["result"]["promoted"] == result.promoted


def test_label_free_adapt_trains_measures_and_gates(tiny_models, tiny_beir: Path, tmp_path: Path, capsys) -> None:
    store = _served(tiny_models, tiny_beir, tmp_path)
    run = tmp_path / "run"
    config = AdaptConfig(collection="kb", run_dir=str(run), pseudo=PSEUDO, **FAST)
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        result = run_adapt(engine, config)
    out = capsys.readouterr().out
    for stage in ("[1/5] data (pseudo-queries, no labels)", "[2/5] negatives", "[3/5] dense", "[4/5] evaluate", "[5/5] promote"):
        assert stage in out
    assert "budget left" in out and "epoch 1.00: dev nDCG@10" in out and "epoch 2.00: dev nDCG@10" in out
    assert "## Before/after evaluation" in out and "chose: " in out
    data = json.loads((run / "data" / "manifest.json").read_text())
    assert data["config"]["use_labels"] is False and data["stats"]["labelled_train_examples"] == 0
    tests = [json.loads(line) for line in (run / "data" / "test.jsonl").read_text().splitlines()]
    assert tests and all(q["source"] == "inverse-cloze" for q in tests)  # judged on pseudo-queries: no labels anywhere
    dense = json.loads((run / "dense" / "run.json").read_text())
    assert dense["status"] == "finished" and len(dense["metrics"]["dev_by_epoch"]) == 2 and dense["config"]["keep"] == "best-dev"
    assert (run / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _check_outcome(store, run, result)


def test_labelled_adapt_interrupted_resumes_to_the_same_result(tiny_models, tiny_beir: Path, tmp_path: Path, monkeypatch) -> None:
    store = _served(tiny_models, tiny_beir, tmp_path)
    # The user's questions name doc ids of the collection (JSONL); train and test questions alike.
    queries = {row["_id"]: row["text"] for row in map(json.loads, (tiny_beir / "queries.jsonl").read_text().splitlines())}
    questions = tmp_path / "questions.jsonl"
    lines = []
    for split in ("train", "test"):
        for line in (tiny_beir / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
            query_id, doc_id, _ = line.split("\t")
            lines.append(json.dumps({"query": queries[query_id], "doc_ids": [doc_id]}))
    questions.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    config = AdaptConfig(collection="kb", run_dir=str(run), questions=str(questions), max_p_value=None, min_gain=-1.0, **FAST)

    real_evaluate = adapt_module.evaluate_systems

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the user pressed Ctrl-C once training was done

    monkeypatch.setattr(adapt_module, "evaluate_systems", interrupted)
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine, pytest.raises(KeyboardInterrupt):
        run_adapt(engine, config, progress=False)
    assert json.loads((run / "adapt.json").read_text())["status"] == "running"
    trained = json.loads((run / "dense" / "run.json").read_text())
    assert trained["status"] == "finished"
    data = json.loads((run / "data" / "manifest.json").read_text())
    assert data["config"]["use_labels"] is True and data["stats"]["labelled_train_examples"] > 0
    tests = [json.loads(line) for line in (run / "data" / "test.jsonl").read_text().splitlines()]
    assert tests and all(q["source"] == "labels" for q in tests)

    monkeypatch.setattr(adapt_module, "evaluate_systems", real_evaluate)
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        result = run_adapt(engine, config, progress=False)
    # Resumed: the data and the model were kept, not made again.
    assert json.loads((run / "dense" / "run.json").read_text())["finished_at"] == trained["finished_at"]
    assert json.loads((run / "data" / "manifest.json").read_text())["sha256"] == data["sha256"]
    assert result.promoted  # min_gain -1, no p-value: this gate passes whatever tiny models do
    _check_outcome(store, run, result)
    assert result.promotion is not None and result.promotion["collection"] == "kb_v2"
    # A finished run is not redone (and not promoted twice): the same result again.
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        again = run_adapt(engine, config, progress=False)
        assert engine.resolve("kb") == "kb_v2" and engine.list_collections() == ["kb_v1", "kb_v2"]
    assert (again.promoted, again.reason, again.decision) == (result.promoted, result.reason, result.decision)


def test_adapt_refuses_what_it_cannot_do(tiny_models, tiny_beir: Path, tmp_path: Path) -> None:
    store = _served(tiny_models, tiny_beir, tmp_path)
    with Engine(StoreConfig(uri=store), runtime=RuntimeConfig(device="cpu")) as engine:
        # A plain collection has no alias to switch: said before any work.
        with pytest.raises(ConfigError, match="pass --alias NAME"):
            run_adapt(engine, AdaptConfig(collection="kb_v1", run_dir=str(tmp_path / "a"), pseudo=PSEUDO, **FAST), progress=False)
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"query": "cat", "doc_ids": ["nope"]}) + "\n")
        with pytest.raises(InputError, match="not in the collection, e.g. nope"):
            run_adapt(engine, AdaptConfig(collection="kb", run_dir=str(tmp_path / "b"), questions=str(bad), **FAST), progress=False)
        # Another run's folder is not reused with other settings.
        with pytest.raises(ConfigError, match="other settings"):
            run_adapt(engine, AdaptConfig(collection="kb", run_dir=str(tmp_path / "b"), questions=str(bad), **{**FAST, "epochs": 1}), progress=False)


def test_parse_budget() -> None:
    assert parse_budget("15m") == 900 and parse_budget("90s") == 90 and parse_budget("1h") == 3600 and parse_budget("30") == 30
    for bad in ("soon", "-5m", "0"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


@pytest.mark.usefixtures("no_hybrid_search_env")
def test_adapt_command_names_a_missing_collection(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hybrid_search.cli import app

    result = CliRunner().invoke(app, ["--uri", str(tmp_path / "x.db"), "adapt", "-C", "nope", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "no collection 'nope'" in result.output
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(app, ["adapt", "-C", "kb", "--budget", "soon"])
    assert result.exit_code == 2 and "budget must look like 15m" in result.output
