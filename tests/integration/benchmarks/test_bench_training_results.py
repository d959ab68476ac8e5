"""The training-results commands end to end on what a tiny pipeline run leaves
(tiny models, a small BEIR set): rerank-offload lists / score / report,
rerank-weights (scored here and offloaded), training-fusion, and a
training-run plan whose steps run as subprocesses and are recorded."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.__main__ import app
from tests.integration.training.beir_fixture import make_beir

pytestmark = pytest.mark.integration

runner = CliRunner()
GRID = [str(i / 10) for i in range(11)]


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def finished_run(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A pipeline config and what its run leaves behind for these commands: the data and the
    evaluation collections (`train evaluate`), and a reranker (the tiny cross-encoder stands in
    for a trained one: nothing here depends on its training). Yields the config."""
    import torch

    from training.data import DataConfig, build_training_data
    from training.evaluate import EvalConfig, System, evaluate_systems
    from training.pipeline import load_pipeline_config

    root = tmp_path_factory.mktemp("training-results")
    beir = make_beir(root / "beir")
    config = root / "tiny_reranker.toml"
    config.write_text(
        f"""out = "{root / 'run'}"
[data]
source = "beir"
path = "{beir}"
dev_fraction = 0.2
[base]
dense = {{ model = "{tiny_models.dense}", kind = "sentence-transformers" }}
[reranker]
base_model = "{tiny_models.cross_encoder}"
max_length = 96
device = "cpu"
[evaluation]
device = "cpu"
rerank_top_n = 5
k = 5
depth = 20
metrics = ["ndcg@10", "recall@10", "mrr@10"]
[evaluation.fusion]
method = "weighted"
normalization = "min-max"
weights = {{ bm25 = 0.8, dense = 0.2 }}
"""
    )
    pipeline = load_pipeline_config(config)  # the config is one `train all` accepts
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared CPU: one thread is fastest
    try:
        data = build_training_data(DataConfig(source="beir", path=str(beir), dev_fraction=0.2), root / "run" / "data", progress=False)
        systems = (System("base", dense=pipeline.base.dense), System("tuned", dense=pipeline.base.dense, rows=("bm25",)))
        evaluate_systems(data, EvalConfig(systems=systems, baseline="base", candidate="tuned", gate_path="bm25", k=5, depth=20, device="cpu"), root / "run" / "evaluation", progress=False)
        (root / "run" / "reranker").mkdir()
        (root / "run" / "reranker" / "model").symlink_to(tiny_models.cross_encoder)
        yield config
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow  # ~30 s: a tiny training run, then every training-result command on it
def test_offload_weights_fusion_and_a_plan(finished_run: Path, tmp_path: Path) -> None:
    config, results = str(finished_run), finished_run.with_suffix("")
    _invoke("rerank-offload", "lists", config)
    unreranked = json.loads((results / "unreranked.json").read_text())
    assert set(unreranked) == {"bm25", "hybrid", "environment"} and 0.0 <= unreranked["hybrid"]["ndcg@10"] <= 1.0
    assert (finished_run.parent / "run" / "offload" / "lists.json.gz").is_file()

    _invoke("rerank-offload", "score", config, "--device", "cpu")
    scores = json.loads((results / "scores.json").read_text())
    assert scores["rerank"]["top_n"] == 5 and len(scores["lists_sha256"]) == 64
    assert all(len(values) <= 5 for values in scores["scores"]["hybrid"].values())

    table = _invoke("rerank-offload", "report", config)
    metrics = json.loads((results / "metrics.json").read_text())
    assert {"bm25+rerank", "hybrid+rerank"} <= set(metrics) and "| hybrid+rerank |" in table
    evaluation = json.loads((finished_run.parent / "run" / "evaluation" / "evaluation.json").read_text())
    assert unreranked["bm25"]["ndcg@10"] == pytest.approx(evaluation["results"]["base"]["bm25"]["ndcg@10"], abs=1e-4)

    _invoke("rerank-weights", config)
    # The offloaded hybrid+rerank row is the engine's own: Engine.search reranked the same lists (w = 0).
    here = json.loads((results / "rerank_weights.json").read_text())
    assert list(here["by_weight"]["test"]) == GRID and here["chosen_first_stage_weight"] in [float(w) for w in GRID]
    assert here["by_weight"]["test"]["0.0"]["ndcg@10"] == pytest.approx(metrics["hybrid+rerank"]["ndcg@10"], abs=1e-4)
    assert here["model"] == str(finished_run.parent / "run" / "reranker" / "model")
    assert here["by_weight"]["test"]["1.0"]["ndcg@10"] == pytest.approx(unreranked["hybrid"]["ndcg@10"], abs=1e-4)
    assert any(key.startswith("dev-chosen w") for key in here["paired_tests"])
    _invoke("rerank-weights", config, "--offloaded")
    offloaded = json.loads((results / "rerank_weights.json").read_text())
    assert offloaded["test_scores"].startswith("offloaded")
    for w in GRID:  # same lists, same scores
        assert offloaded["by_weight"]["test"][w] == pytest.approx(here["by_weight"]["test"][w], abs=1e-4)

    _invoke("training-fusion", config)
    fusion = json.loads((results / "fusion_tuning.json").read_text())
    assert set(fusion["systems"]) == {"base", "tuned"}
    row = fusion["systems"]["base"]["bm25+dense"]
    assert row["settings_in_grid"] > 1 and 0.0 < row["test_vs_bm25_p"] <= 1.0

    _training_run_plan(finished_run, tmp_path)


def _training_run_plan(finished_run: Path, tmp_path: Path) -> None:
    """A plan over the finished run (after the offload commands above): its steps run as
    subprocesses (no Milvus here: this process holds the run's Lite file), recorded."""
    results = tmp_path / "results"
    plan = tmp_path / "tiny.toml"
    plan.write_text(
        f'results = "{results}"\n'
        f'[[step]]\nrun = ["benchmarks", "rerank-offload", "report", "{finished_run}"]\n'
        f'[[step]]\ncollect = {{ from = "{finished_run.parent / "run"}", files = {{ "evaluation/evaluation.json" = "evaluation.json" }} }}\n'
        f'[[step]]\nrun = ["benchmarks", "rerank-offload", "report", "{finished_run}", "--results", "{results}"]\n'
        f'[[step]]\nrun = ["benchmarks", "summary"]\n'
    )
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[3]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = runner.invoke(app, ["training-run", str(plan), "--device", "cpu", "--logs", str(tmp_path / "logs")], env=env)
    # The second report fails (exit 2, an input error): no scores.json in that results folder. The run stops there, recorded.
    assert result.exit_code == 1, result.output
    record = json.loads((results / "training_run.json").read_text())
    assert [s.get("returncode") for s in record["steps"]] == [0, None, 2, None] and record["steps"][3]["status"] == "not run"
    assert record["ok"] is False and record["device"] == "cpu" and len(record["plan_sha256"]) == 64
    assert record["environment"]["command"].startswith("python -m benchmarks")
    assert "scores" in Path(record["steps"][2]["log"]).read_text()
    assert json.loads((results / "evaluation.json").read_text())["collections"]["base"].startswith("eval_base_")
