"""Training run plans (benchmarks/training_plan.py) and the pure parts of the
training-results commands: plan parsing and checks, the committed plans, the
config -> run/results resolution, the weight rule and the offload helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.rerank_offload import (
    check_scored_lists,
    lists_fingerprint,
    report_markdown,
    reranked_from_scores,
)
from benchmarks.rerank_weights import choose_weight
from benchmarks.training_fusion import fusion_combos
from benchmarks.training_inputs import load_training_run
from benchmarks.training_plan import PLANS_DIR, PlanStep, load_plan, plan_file, run_plan
from hybrid_search.errors import ConfigError, InputError

pytestmark = pytest.mark.unit

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "training"


def _plan(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(f'results = "{tmp_path / "out"}"\n' + body)
    return path


def test_plan_steps_run_the_project_clis_with_placeholders_filled(tmp_path: Path) -> None:
    plan = load_plan(_plan(tmp_path, '[[step]]\nrun = ["benchmarks", "rerank-offload", "score", "c.toml", "--device", "{device}"]\n'))
    assert plan.name == "plan" and len(plan.sha256) == 64
    argv = plan.steps[0].argv({"device": "cuda", "datasets": "/d", "models": "/m"})
    assert argv == [sys.executable, "-m", "benchmarks", "rerank-offload", "score", "c.toml", "--device", "cuda"]
    hs = PlanStep(run=("hybrid-search", "train", "all", "--data-path", "{datasets}/x")).argv({"device": "", "datasets": "/d", "models": ""})
    assert hs[1:4] == ["-m", "hybrid_search.cli", "train"] and hs[-1] == "/d/x"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[step]]\nrun = ["bash", "-c", "rm -rf /"]\n', "runs hybrid-search or benchmarks"),
        ('[[step]]\nrun = ["benchmarks", "x", "{gpu}"]\n', "unknown placeholder"),
        ("[[step]]\n", "either `run"),
        ('[[step]]\nrun = ["benchmarks"]\ncollect = { from = "r", files = ["a"] }\n', "either `run"),
        ('[[step]]\ncollect = { from = "r", files = ["../secret"] }\n', "inside its folders"),
        ('[[step]]\ncollect = { from = "r", files = { "a/run.json" = "run.json", "b/run.json" = "run.json" } }\n', "to one place"),
        ('[[step]]\ncollect = { from = "r" }\n', "`collect` must be"),
        ('oops = 1\n[[step]]\nrun = ["benchmarks", "x"]\n', "unknown key"),
        ("", "no [[step]]"),
    ],
)
def test_bad_plans_are_refused_before_anything_runs(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("`", "`")):
        load_plan(_plan(tmp_path, body))


@pytest.mark.parametrize(
    ("loader", "text", "error", "match"),
    [
        (load_plan, '[[step]]\nrun = ["benchmarks", "x"]\n', ConfigError, "results"),
        (load_plan, "results = [", InputError, "not valid TOML"),
        (load_plan, 'results = "r"\nrecord = "../x.json"\n[[step]]\nrun = ["benchmarks", "x"]\n', ConfigError, "file name ending in .json"),
        (load_training_run, "[evaluation]\nk = 5\n", ConfigError, "out"),
        (load_training_run, 'out = "r"\n[evaluation]\nkk = 5\n', ConfigError, "unknown setting"),
    ],
)
def test_bad_plan_and_config_files_are_refused(tmp_path: Path, loader, text: str, error: type, match: str) -> None:
    path = tmp_path / "file.toml"
    path.write_text(text)
    with pytest.raises(error, match=match):
        loader(path)


def test_an_unknown_plan_name_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="no training run plan 'nope'.*nvidia_sec_10k_reranker"):
        plan_file("nope")


def test_every_committed_plan_loads_and_names_an_existing_config() -> None:
    plans = sorted(PLANS_DIR.glob("*.toml"))
    assert {p.stem for p in plans} >= {"nvidia_sec_10k", "nvidia_sec_10k_reranker", "nvidia_sec_10k_reranker_labels", "nvidia_sec_10k_sparse"}
    root = PLANS_DIR.parent.parent
    for path in plans:
        plan = load_plan(path)
        assert plan_file(plan.name) == path
        configs = [arg for step in plan.steps for arg in step.run if arg.endswith(".toml")]
        assert configs and all((root / c).is_file() for c in configs), path
        assert (root / plan.results).parent.is_dir()


def test_collect_copies_renames_and_a_missing_file_fails_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "evaluation").mkdir(parents=True)
    (run / "evaluation" / "evaluation.json").write_text("{}")
    plan = load_plan(
        _plan(
            tmp_path,
            f'[[step]]\ncollect = {{ from = "{run}", files = {{ "evaluation/evaluation.json" = "evaluation.json" }} }}\n'
            f'[[step]]\ncollect = {{ from = "{run}", files = ["missing.json"] }}\n'
            '[[step]]\nrun = ["benchmarks", "summary"]\n',
        )
    )
    record = run_plan(plan, logs=tmp_path / "logs", log=lambda _: None)
    assert (tmp_path / "out" / "evaluation.json").read_text() == "{}"
    assert not record["ok"] and "missing.json" in record["steps"][1]["error"]
    assert record["steps"][2]["status"] == "not run"
    assert (tmp_path / "out" / "training_run.json").is_file()


def test_a_plan_may_name_its_record(tmp_path: Path) -> None:
    plan = load_plan(_plan(tmp_path, 'record = "training_run.lists.json"\n[[step]]\ncollect = { from = "nowhere", files = ["a.json"] }\n'))
    assert not run_plan(plan, logs=tmp_path / "logs", log=lambda _: None)["ok"]
    assert (tmp_path / "out" / "training_run.lists.json").is_file() and not (tmp_path / "out" / "training_run.json").exists()


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    plan = load_plan(_plan(tmp_path, '[[step]]\nrun = ["benchmarks", "summary"]\n'))
    record = run_plan(plan, dry_run=True, logs=tmp_path / "logs", log=lambda _: None)
    assert record["ok"] and record["steps"][0]["argv"][:2] == ["-m", "benchmarks"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "logs").exists()


def test_a_pipeline_config_declares_the_run_and_the_results() -> None:
    run = load_training_run(RESULTS / "nvidia_sec_10k_reranker.toml")
    assert run.out == Path("runs/training/nvidia_sec_10k_reranker")
    assert run.results == RESULTS / "nvidia_sec_10k_reranker"
    assert run.rerank_settings() == {"max_length": 256, "long_passages": "max-window", "window_overlap": 64, "top_n": 20}
    assert run.evaluation.fusion.weights == {"bm25": 0.8, "dense": 0.2} and run.evaluation.k == 20
    labels = load_training_run(RESULTS / "nvidia_sec_10k_reranker_labels.toml")
    assert labels.reranker.sources == ("labels",) and labels.reranker.epochs == 4
    with pytest.raises(ConfigError, match="trains no reranker"):
        load_training_run(RESULTS / "nvidia_sec_10k_sparse.toml").rerank_settings()
    with pytest.raises(InputError, match="train all --config"):
        run.require(Path("runs/nowhere"), "the run's data")


def test_the_weight_rule_takes_the_best_dev_value_and_ties_to_the_smaller_weight() -> None:
    table = {"0.0": {"ndcg@10": 0.5}, "0.3": {"ndcg@10": 0.9}, "0.4": {"ndcg@10": 0.9}, "1.0": {"ndcg@10": 0.8}}
    assert choose_weight(table) == 0.3


def test_fusion_combos_add_the_sparse_path_only_when_present() -> None:
    assert fusion_combos(["bm25", "dense"]) == [("bm25", "dense")]
    assert fusion_combos(["bm25", "sparse", "dense"]) == [("bm25", "dense"), ("bm25", "sparse", "dense")]
    assert fusion_combos(["bm25"]) == []


def test_offloaded_scores_keep_first_stage_order_for_ties_and_must_match_their_lists() -> None:
    from training.evaluate import rankings_at

    lists = {"q1": [["a", "text"], ["b", "text"], ["c", "text"]]}
    reranked = reranked_from_scores(lists, {"q1": [0.1, 0.9, 0.1]})
    assert rankings_at(reranked, 0.0) == {"q1": ["b", "a", "c"]}
    with pytest.raises(InputError, match="other lists"):
        reranked_from_scores(lists, {"q1": [0.1, 0.9]})
    assert lists_fingerprint({"hybrid": lists}) != lists_fingerprint({"hybrid": {"q1": [["b", "t"], ["a", "t"], ["c", "t"]]}})
    check_scored_lists({"lists_sha256": lists_fingerprint({"hybrid": lists})}, {"hybrid": lists})
    with pytest.raises(InputError, match="other lists"):
        check_scored_lists({"lists_sha256": "0" * 64}, {"hybrid": lists})
    with pytest.raises(InputError, match="no lists fingerprint"):
        check_scored_lists({}, {"hybrid": lists})
    table = report_markdown({"bm25": {"ndcg@10": 0.5}, "bm25+rerank": {"ndcg@10": 0.25}}, ("ndcg@10",))
    assert table.splitlines()[2:] == ["| bm25 | 0.5000 |", "| bm25+rerank | 0.2500 |"]
