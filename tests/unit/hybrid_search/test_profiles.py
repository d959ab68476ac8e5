"""Model profile resolution: hub defaults, a local profile file, precedence."""

import pytest
from typer.testing import CliRunner

from hybrid_search import cli
from hybrid_search.config import DEFAULT_DENSE_MODEL, DEFAULT_RERANK_MODEL
from hybrid_search.errors import ConfigError
from hybrid_search.profiles import (
    HUB_PROFILE,
    PROFILE_ENV,
    ModelChoice,
    default_profile_path,
    load_model_profile,
    local_profile_choices,
    write_profile,
)

pytestmark = pytest.mark.unit


@pytest.fixture()
def models_dir(tmp_path):
    """Folders named like get-models.sh's (a config.json is all resolution reads)."""
    root = tmp_path / "models"
    for name in ("multilingual-e5-small", "all-MiniLM-L6-v2", "splade-tiny"):
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text("{}", encoding="utf-8")
    return root


@pytest.fixture()
def config_home(tmp_path, monkeypatch):
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    return home


def test_without_a_profile_file_the_hub_models_are_the_defaults(config_home):
    profile = load_model_profile()
    assert profile is HUB_PROFILE
    assert (profile.dense.model, profile.dense.kind) == (DEFAULT_DENSE_MODEL, "bge-m3") == ("BAAI/bge-m3", "bge-m3")
    assert (profile.rerank.model, profile.rerank.kind) == (DEFAULT_RERANK_MODEL, "flag")


def test_a_written_local_profile_is_picked_up(config_home, models_dir):
    write_profile(default_profile_path(), local_profile_choices(models_dir), note="test")
    assert default_profile_path() == config_home / "hybrid-search" / "models.toml"
    profile = load_model_profile()
    assert profile.name == "local" and profile.source == default_profile_path()
    assert profile.dense == ModelChoice(str(models_dir / "multilingual-e5-small"), "sentence-transformers")
    assert profile.sparse == ModelChoice(str(models_dir / "splade-tiny"), "splade")
    assert profile.rerank == HUB_PROFILE.rerank  # no local reranker: the table is left out


def test_minilm_is_the_dense_fallback_and_a_missing_sparse_model_is_named(tmp_path, models_dir):
    (models_dir / "multilingual-e5-small" / "config.json").unlink()
    assert local_profile_choices(models_dir)["dense"].model.endswith("all-MiniLM-L6-v2")
    (models_dir / "splade-tiny" / "config.json").unlink()
    with pytest.raises(ConfigError, match="no sparse model .*splade-tiny"):
        local_profile_choices(models_dir)


def test_env_selects_hub_or_another_file(config_home, models_dir, tmp_path, monkeypatch):
    write_profile(default_profile_path(), local_profile_choices(models_dir), note="test")
    monkeypatch.setenv(PROFILE_ENV, "hub")
    assert load_model_profile() is HUB_PROFILE
    other = tmp_path / "other.toml"
    other.write_text('[dense]\nmodel = "./models/all-MiniLM-L6-v2"\nkind = "sentence-transformers"\n', encoding="utf-8")
    monkeypatch.setenv(PROFILE_ENV, str(other))
    profile = load_model_profile()
    # relative to the profile file; tables left out keep the hub's choice
    assert profile.dense.model == str(models_dir / "all-MiniLM-L6-v2") and profile.sparse == HUB_PROFILE.sparse
    monkeypatch.setenv(PROFILE_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="no such profile file"):
        load_model_profile()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[dense\n", "cannot be read"),
        ('[reranker]\nmodel = "x"\nkind = "flag"\n', "unknown table"),
        ('[dense]\nmodel = "x"\nkind = "st"\n', "kind"),
        ('[dense]\nmodel = "x"\nkind = "bge-m3"\nprompt = "q"\n', "unknown key"),
        ('[sparse]\nkind = "splade"\n', "needs model and kind"),
        ('[sparse]\nmodel = "/no/such/folder"\nkind = "splade"\n', "does not exist"),
    ],
)
def test_bad_profiles_are_refused_with_the_file_named(config_home, text, message):
    path = default_profile_path()
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_model_profile()
    assert str(path) in str(caught.value)


def _new_config(**flags):
    values = dict.fromkeys(
        ("dense_model", "dense_kind", "query_prompt", "document_prompt", "sparse_model", "sparse_kind", "language", "user_dict", "no_dense", "no_sparse")
    )
    values.update(flags)
    return cli._new_collection_config("docs", **values)


def test_cli_defaults_come_from_the_profile_and_named_models_win(config_home, models_dir, monkeypatch):
    monkeypatch.setattr(cli.state, "settings", cli.LayeredSettings())
    for name in ("HYBRID_SEARCH_DENSE_MODEL", "HYBRID_SEARCH_SPARSE_MODEL", "HYBRID_SEARCH_DENSE_KIND", "HYBRID_SEARCH_RERANK_MODEL"):
        monkeypatch.delenv(name, raising=False)
    hub = _new_config()
    assert (hub.dense.model, hub.dense.kind, hub.sparse.model, hub.sparse.kind) == ("BAAI/bge-m3", "bge-m3", "BAAI/bge-m3", "bge-m3")
    write_profile(default_profile_path(), local_profile_choices(models_dir), note="test")
    local = _new_config()
    assert (local.dense.kind, local.sparse.kind) == ("sentence-transformers", "splade")
    assert local.dense.model.endswith("multilingual-e5-small") and local.sparse.model.endswith("splade-tiny")
    # a named model takes the hub's kind as its default, not the profile's
    named = _new_config(dense_model="BAAI/bge-m3")
    assert (named.dense.model, named.dense.kind) == ("BAAI/bge-m3", "bge-m3")
    monkeypatch.setenv("HYBRID_SEARCH_SPARSE_MODEL", "my/sparse")
    assert _new_config().sparse.model == "my/sparse"
    # the reranker keeps the hub default (no local reranker in the profile)
    assert cli.state.settings.rerank_config().model == DEFAULT_RERANK_MODEL


def test_write_local_command_keeps_an_existing_profile(config_home, models_dir):
    runner = CliRunner()
    first = runner.invoke(cli.app, ["profile", "write-local", str(models_dir)])
    assert first.exit_code == 0, first.output
    written = default_profile_path().read_text(encoding="utf-8")
    (models_dir / "multilingual-e5-small" / "config.json").unlink()
    again = runner.invoke(cli.app, ["profile", "write-local", str(models_dir)])
    assert again.exit_code == 0 and "kept the existing" in again.output
    assert default_profile_path().read_text(encoding="utf-8") == written
    forced = runner.invoke(cli.app, ["profile", "write-local", str(models_dir), "--force"])
    assert forced.exit_code == 0, forced.output
    assert "all-MiniLM-L6-v2" in default_profile_path().read_text(encoding="utf-8")
    missing = runner.invoke(cli.app, ["profile", "write-local", str(models_dir / "nope"), "--path", str(config_home / "x.toml")])
    assert missing.exit_code == 2 and "no dense model" in missing.output and "Traceback" not in missing.output
