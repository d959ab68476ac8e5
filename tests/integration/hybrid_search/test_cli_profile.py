"""After setup writes the model profile, index and search need no model flag."""

import json

import pytest
from typer.testing import CliRunner

from hybrid_search.cli import app
from hybrid_search.profiles import PROFILE_ENV

pytestmark = pytest.mark.integration


def test_index_and_search_a_folder_with_no_model_flag(tiny_models, tmp_path, monkeypatch):
    # a models folder laid out as get-models.sh leaves it, holding tiny models
    models = tmp_path / "models"
    models.mkdir()
    (models / "all-MiniLM-L6-v2").symlink_to(tiny_models.dense, target_is_directory=True)
    (models / "splade-tiny").symlink_to(tiny_models.splade, target_is_directory=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text("# Cats\n\nThe cat sat on the mat.\n", encoding="utf-8")
    (docs / "milvus.txt").write_text("Milvus stores vectors for retrieval.\n", encoding="utf-8")
    runner = CliRunner()
    wrote = runner.invoke(app, ["profile", "write-local", str(models)])  # what scripts/setup.sh runs
    assert wrote.exit_code == 0, wrote.output
    indexed = runner.invoke(app, ["--device", "cpu", "index", str(docs), "-C", "docs"])
    assert indexed.exit_code == 0, indexed.output
    found = runner.invoke(app, ["--device", "cpu", "search", "cat on the mat", "-C", "docs", "-k", "1", "--json"])
    assert found.exit_code == 0, found.output
    result = json.loads(found.stdout)
    assert result["paths"] == ["bm25", "sparse", "dense"] and result["hits"][0]["doc_id"].endswith("cats.md")
    info = json.loads(runner.invoke(app, ["collections", "info", "docs"]).stdout)
    assert info["manifest"]["dense"]["model"] == str((models / "all-MiniLM-L6-v2").resolve())
    assert info["manifest"]["sparse"]["kind"] == "splade"
