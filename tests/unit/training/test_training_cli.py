"""`hybrid-search train ...`: the Typer app's commands and error handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.cli import train_app

pytestmark = pytest.mark.unit

runner = CliRunner()


def test_every_stage_has_a_command() -> None:
    result = runner.invoke(train_app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "negatives", "dense", "sparse", "reranker", "evaluate", "promote", "retire", "all"):
        assert command in result.output


def test_data_command_writes_a_data_folder(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = runner.invoke(train_app, ["data", "--beir", str(tiny_beir), "--out", str(out), "--pseudo", "inverse-cloze,keywords", "--dev-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["documents"]["test"] == 6 and stats["generated_train_examples"] > 0
    assert (out / "split.json").is_file() and (out / "manifest.json").is_file()


def test_errors_are_reported_without_a_traceback(tiny_beir: Path, tmp_path: Path) -> None:
    result = runner.invoke(train_app, ["data", "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and "exactly one of" in result.output
    result = runner.invoke(train_app, ["data", "--beir", str(tiny_beir), "--out", str(tmp_path / "d"), "--pseudo", "riddles"])
    assert result.exit_code == 2 and "kinds" in result.output
    result = runner.invoke(train_app, ["all", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code != 0


def test_evaluate_refuses_a_p_value_outside_0_1(tiny_beir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert runner.invoke(train_app, ["data", "--beir", str(tiny_beir), "--out", str(data)]).exit_code == 0
    result = runner.invoke(train_app, ["evaluate", "--data", str(data), "--out", str(tmp_path / "eval"), "--max-p-value", "1.5"])
    assert result.exit_code == 2 and "max_p_value" in result.output
    assert not (tmp_path / "eval" / "evaluation.json").exists()


def test_dense_refuses_an_unknown_keep_choice(tiny_beir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert runner.invoke(train_app, ["data", "--beir", str(tiny_beir), "--out", str(data)]).exit_code == 0
    result = runner.invoke(train_app, ["dense", "--data", str(data), "--out", str(tmp_path / "run"), "--base-model", "m", "--keep", "best"])
    assert result.exit_code == 2 and "keep" in result.output
