"""Every shipped training config runs from a user's clone: its data comes by
--data-path (or a path relative to the config), and missing data is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_search.errors import ConfigError, InputError
from training.pipeline import load_pipeline_config

pytestmark = pytest.mark.unit

SHIPPED = sorted((Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "training").glob("*.toml"))


def test_configs_are_shipped() -> None:
    assert len(SHIPPED) >= 5


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_takes_its_data_by_argument(config: Path, tiny_beir: Path) -> None:
    assert "../shared" not in config.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="names no training data: pass --data-path"):
        load_pipeline_config(config)
    with pytest.raises(InputError, match="no training data at .*missing"):
        load_pipeline_config(config, data_path=tiny_beir.parent / "missing")
    loaded = load_pipeline_config(config, data_path=tiny_beir, out="elsewhere")
    assert loaded.data.path == str(tiny_beir) and loaded.out == "elsewhere"


def test_a_relative_data_path_is_relative_to_the_config(tiny_beir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    text = '[data]\nsource = "beir"\npath = "../beir"\n[base.dense]\nmodel = "m"\nkind = "sentence-transformers"\n[dense]\nbase_model = "m"\n'
    (folder / "run.toml").write_text('out = "x"\n' + text, encoding="utf-8")
    assert load_pipeline_config(folder / "run.toml").data.path == str(tiny_beir.resolve())
