"""The one settings layer every command reads: typed parsing of the
environment and the config file, precedence, and the shells that use it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hybrid_search.cli import app
from hybrid_search.errors import ConfigError
from hybrid_search.settings import SETTINGS, LayeredSettings, parse_value

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_hybrid_search_env")]

runner = CliRunner()


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("HYBRID_SEARCH_FP16", "false", False),
        ("HYBRID_SEARCH_FP16", "0", False),
        ("HYBRID_SEARCH_FP16", "no", False),
        ("HYBRID_SEARCH_FP16", "TRUE", True),
        ("HYBRID_SEARCH_FP16", "1", True),
        ("HYBRID_SEARCH_NO_DENSE", "yes", True),
        ("HYBRID_SEARCH_RERANK_MIN_SCORE", "0.5", 0.5),
        ("HYBRID_SEARCH_TIMEOUT_S", "5", 5.0),
        ("HYBRID_SEARCH_BATCH_SIZE", "8", 8),
        ("HYBRID_SEARCH_SEARCH_K", " 20 ", 20),
        ("HYBRID_SEARCH_DEVICE", "cpu", "cpu"),
        ("HYBRID_SEARCH_SEARCH_FUSION", "weighted", "weighted"),
        ("HYBRID_SEARCH_RERANK_MODEL", "some/reranker", "some/reranker"),
    ],
)
def test_environment_values_are_parsed_to_their_declared_type(monkeypatch, variable, raw, expected):
    setting = next(s for s in SETTINGS if s.env == variable)
    monkeypatch.setenv(variable, raw)
    value = LayeredSettings().get(setting.section, setting.key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("variable", "raw", "says"),
    [
        ("HYBRID_SEARCH_FP16", "maybe", "true or false"),
        ("HYBRID_SEARCH_RERANK_MIN_SCORE", "high", "a number"),
        ("HYBRID_SEARCH_RERANK_FIRST_STAGE_WEIGHT", "nan", "finite"),
        ("HYBRID_SEARCH_BATCH_SIZE", "8.5", "an integer"),
        ("HYBRID_SEARCH_DEVICE", "gpu", "'auto', 'cpu', 'cuda', 'mps'"),
        ("HYBRID_SEARCH_DENSE_KIND", "bert", "'sentence-transformers', 'bge-m3'"),
    ],
)
def test_a_bad_environment_value_is_refused_with_the_variable_named(monkeypatch, variable, raw, says):
    setting = next(s for s in SETTINGS if s.env == variable)
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ConfigError, match=f"environment variable {variable}") as caught:
        LayeredSettings().get(setting.section, setting.key)
    assert says in str(caught.value) and repr(raw) in str(caught.value)


def test_the_typed_configs_carry_parsed_values(monkeypatch):
    monkeypatch.setenv("HYBRID_SEARCH_FP16", "false")
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_MIN_SCORE", "0.5")
    monkeypatch.setenv("HYBRID_SEARCH_TIMEOUT_S", "7")
    settings = LayeredSettings()
    assert settings.runtime_config().fp16 is False and not settings.runtime_config().use_fp16()
    assert settings.rerank_config().min_score == 0.5
    assert settings.store_config().timeout_s == 7.0


def test_precedence_flag_then_global_flag_then_file_then_environment(tmp_path, monkeypatch):
    config = tmp_path / "hs.toml"
    config.write_text('[store]\ntoken = "from-file"\n[runtime]\ndevice = "mps"\n', encoding="utf-8")
    monkeypatch.setenv("HYBRID_SEARCH_TOKEN", "from-env")
    monkeypatch.setenv("HYBRID_SEARCH_DEVICE", "cpu")
    monkeypatch.setenv("HYBRID_SEARCH_URI", "env.db")
    settings = LayeredSettings.load(config, token="from-global-flag")
    assert settings.get("store", "token", "from-flag") == "from-flag"
    assert settings.get("store", "token") == "from-global-flag"
    assert settings.get("runtime", "device") == "mps"
    assert settings.get("store", "uri") == "env.db"
    assert LayeredSettings.load(None).get("runtime", "device") == "cpu"


def test_config_file_values_are_type_checked(tmp_path):
    config = tmp_path / "hs.toml"
    config.write_text('[runtime]\nbatch_size = "many"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[runtime\] batch_size must be an integer"):
        LayeredSettings.load(config)
    config.write_text('[rerank]\nkind = "colbert"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[rerank\] kind must be one of 'flag', 'cross-encoder'"):
        LayeredSettings.load(config)
    config.write_text("[rerank]\nmin_score = 1\n", encoding="utf-8")
    assert LayeredSettings.load(config).get("rerank", "min_score") == 1.0


def test_parse_value_refuses_booleans_for_numbers():
    with pytest.raises(ConfigError, match="x must be an integer"):
        parse_value(True, int, "x")


def test_the_cli_refuses_a_bad_variable_with_exit_2_and_its_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRID_SEARCH_FP16", "maybe")
    result = runner.invoke(app, ["collections", "list"])
    assert result.exit_code == 2
    assert "environment variable HYBRID_SEARCH_FP16 must be true or false" in result.output
    assert not (tmp_path / "hybrid_search.db").exists()  # refused before opening anything


def test_the_cli_refuses_a_bad_config_file_with_exit_2(tmp_path):
    config = tmp_path / "hs.toml"
    config.write_text("[runtime]\nfp16 = 3\n", encoding="utf-8")
    result = runner.invoke(app, ["--config", str(config), "collections", "list"])
    assert result.exit_code == 2 and "[runtime] fp16 must be true or false" in result.output


# --- serve reads the same --uri / --token / config file --------------------------------


@pytest.fixture
def served(monkeypatch):
    """The settings `serve` would run with (uvicorn is not started)."""
    seen = {}
    monkeypatch.setattr("hybrid_search.api.server.run_server", lambda settings: seen.setdefault("settings", settings))
    return seen


@pytest.mark.parametrize(
    "args",
    [
        ["--uri", "{db}", "serve"],
        ["serve", "--uri", "{db}"],
        ["serve", "--store-uri", "{db}"],
        ["--uri", "elsewhere.db", "serve", "--uri", "{db}"],
    ],
)
def test_serve_honours_uri_like_every_command(served, tmp_path, args):
    db = str(tmp_path / "kb.db")
    result = runner.invoke(app, [a.replace("{db}", db) for a in args])
    assert result.exit_code == 0, result.output
    assert served["settings"].store_uri == db


def test_serve_honours_token_config_file_and_environment(served, tmp_path, monkeypatch):
    config = tmp_path / "hs.toml"
    config.write_text('[store]\nuri = "file.db"\n[rerank]\nmodel = "file/reranker"\n', encoding="utf-8")
    monkeypatch.setenv("HYBRID_SEARCH_URI", "env.db")
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_MIN_SCORE", "0.5")
    result = runner.invoke(app, ["--config", str(config), "--token", "secret-token", "serve"])
    assert result.exit_code == 0, result.output
    settings = served["settings"]
    assert settings.store_uri == str(tmp_path / "file.db")  # the file wins over the environment
    assert settings.store_token.get_secret_value() == "secret-token"
    assert settings.rerank_model == "file/reranker" and settings.rerank_min_score == 0.5


def test_serve_names_the_variable_it_refuses(served, monkeypatch):
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_MIN_SCORE", "high")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "rerank_min_score (environment variable HYBRID_SEARCH_RERANK_MIN_SCORE)" in result.output
    assert "settings" not in served


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("0", False), ("yes", True)])
def test_serve_reads_half_precision_as_a_boolean(served, monkeypatch, raw, expected):
    monkeypatch.setenv("HYBRID_SEARCH_FP16", raw)
    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert served["settings"].runtime_config().fp16 is expected
