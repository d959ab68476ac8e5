"""adapt's settings and console pieces that need no model: the budget stop,
report_to, the training curve, the refusal wording."""

from __future__ import annotations

import builtins
import importlib.util
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hybrid_search.errors import ConfigError
from training.adapt import AdaptConfig, _Console, _curve, _refusal, _trainer_callbacks

pytestmark = pytest.mark.unit

DENSE = {
    "dev_before": {"dev_cosine_ndcg@10": 0.40},
    "dev_by_epoch": [{"epoch": 1.0, "dev_cosine_ndcg@10": 0.45}, {"epoch": 2.0, "dev_cosine_ndcg@10": 0.47}],
}


def _state(step: int) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, max_steps=10, epoch=step / 5)


def test_training_stops_when_its_budget_is_spent(capsys) -> None:
    console = _Console(("dense",), 60.0, progress=True)
    (callback,) = _trainer_callbacks(console, deadline=time.monotonic() + 3600)
    callback.on_train_begin(None, _state(0), None)
    control = SimpleNamespace(should_training_stop=False, should_evaluate=False, should_save=False)
    callback.on_step_end(None, _state(3), control)
    assert control.should_training_stop is False  # time left: carry on
    (late,) = _trainer_callbacks(console, deadline=time.monotonic() - 1)
    late.on_train_begin(None, _state(0), None)
    late.on_step_end(None, _state(4), control)
    # Stopped, and the partial epoch is still evaluated and saved (best-dev keeps the best of them).
    assert control.should_training_stop and control.should_evaluate and control.should_save
    callback.on_evaluate(None, _state(5), control, metrics={"eval_dev_cosine_ndcg@10": 0.5})
    out = capsys.readouterr().out
    assert "budget reached at step 4/10" in out and "epoch 1.00: dev nDCG@10 0.5000  (step 5/10, training ETA" in out


def test_report_to_names_the_missing_package() -> None:
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ConfigError, match="needs the wandb package: pip install wandb"):
            AdaptConfig(collection="kb", run_dir="r", report_to="wandb")
    assert AdaptConfig(collection="kb", run_dir="r").report_to == "none"
    with pytest.raises(ConfigError, match="report_to must be one of"):
        AdaptConfig(collection="kb", run_dir="r", report_to="mlflow")  # type: ignore[arg-type]


def test_training_curve_is_a_png_or_names_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:
    pytest.importorskip("matplotlib")
    console = _Console(("dense",), 60.0, progress=True)
    drawn = _curve(tmp_path, DENSE, console)
    assert drawn == str(tmp_path / "training_curve.png") and Path(drawn).read_bytes()[:4] == b"\x89PNG"
    assert _curve(tmp_path, {}, console) is None  # no dev scores: nothing to draw
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert _curve(tmp_path / "other", DENSE, console) is None
    assert "matplotlib is missing (pip install 'hybrid-search[bench]')" in capsys.readouterr().out


def test_refusal_says_what_the_gate_asked() -> None:
    decision = {"metric": "ndcg@10", "baseline": {"value": 0.5}, "candidate": {"value": 0.51}, "min_gain": 0.0, "max_p_value": 0.05, "p_value": 0.3}
    assert _refusal(decision) == (
        "kept the served configuration: ndcg@10 0.5000 -> 0.5100, p = 0.3000 does not pass the gate (gain > 0.0 with p <= 0.05)"
    )
