"""The dense trainer keeps the epoch with the best dev nDCG@10 when asked
(keep = "best-dev"), and records the dev score of every epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_search.errors import ConfigError, InputError
from training.data import DataConfig, build_training_data
from training.embedder import DEV_METRIC, DenseTrainConfig, train_dense
from training.pseudo_queries import PseudoQueryConfig

pytestmark = pytest.mark.integration


def _data(tiny_beir: Path, out: Path, dev_fraction: float):  # noqa: ANN202
    pseudo = PseudoQueryConfig(kinds=("inverse-cloze",), per_chunk=1, min_sentence_words=3, min_rest_words=5)
    return build_training_data(DataConfig(source="beir", path=str(tiny_beir), pseudo=pseudo, dev_fraction=dev_fraction), out, progress=False)


def test_best_dev_epoch_is_the_saved_model(tiny_models, tiny_beir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    data = _data(tiny_beir, tmp_path / "data", 0.3)
    # A high rate on a tiny random model: dev moves from epoch to epoch.
    config = DenseTrainConfig(
        base_model=str(tiny_models.dense), epochs=3, batch_size=4, num_negatives=0, learning_rate=5e-3, keep="best-dev", save_total_limit=1, device="cpu"
    )
    metrics = train_dense(data, config, tmp_path / "run", progress=False)
    by_epoch = [e[DEV_METRIC] for e in metrics["dev_by_epoch"]]
    assert [e["epoch"] for e in metrics["dev_by_epoch"]] == [1.0, 2.0, 3.0] and metrics["kept"] == "best-dev"
    best = max(by_epoch)
    # With this seed dev peaks before the last epoch (0.76 / 0.78 / 0.74 here), so keeping the last would fail below.
    assert by_epoch[-1] < best
    # The saved model scores on dev what the best epoch scored (same evaluator, same weights).
    assert metrics["dev_after"][DEV_METRIC] == pytest.approx(best, abs=1e-6)
    state = json.loads((Path(metrics["best_checkpoint"]) / "trainer_state.json").read_text())
    assert state["epoch"] == by_epoch.index(best) + 1
    assert (tmp_path / "run" / "model").is_dir()


def test_best_dev_needs_dev_queries(tiny_models, tiny_beir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    data = _data(tiny_beir, tmp_path / "data", 0.0)
    config = DenseTrainConfig(base_model=str(tiny_models.dense), epochs=1, batch_size=4, num_negatives=0, keep="best-dev", device="cpu")
    with pytest.raises(InputError, match="best-dev"):
        train_dense(data, config, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="keep"):
        DenseTrainConfig(base_model="m", keep="best")  # type: ignore[arg-type]
