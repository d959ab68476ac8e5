"""`train ...` commands reach the store named by --uri / [store] uri /
HYBRID_SEARCH_URI, like every other hybrid-search command."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hybrid_search.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_hybrid_search_env")]

runner = CliRunner()


@pytest.mark.parametrize("where", ["global-flag", "command-flag", "old-flag", "environment", "config-file"])
def test_train_retire_opens_the_store_it_is_told(tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "elsewhere.db"
    args = ["train", "retire", "--alias", "kb", "--collection", "kb_v1"]
    if where == "global-flag":
        args = ["--uri", str(db), *args]
    elif where == "command-flag":
        args += ["--uri", str(db)]
    elif where == "old-flag":
        args += ["--store", str(db)]
    elif where == "environment":
        monkeypatch.setenv("HYBRID_SEARCH_URI", str(db))
    else:
        (tmp_path / "hs.toml").write_text('[store]\nuri = "elsewhere.db"\n', encoding="utf-8")
        args = ["--config", str(tmp_path / "hs.toml"), *args]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"no collection 'kb_v1' at {db}" in result.output.replace("\n", "")
    assert not (tmp_path / "hybrid_search.db").exists()


def test_train_promote_refuses_a_bad_variable_before_opening_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRID_SEARCH_TIMEOUT_S", "soon")
    result = runner.invoke(app, ["train", "promote", "--alias", "kb", "--dense", "m", "--force"])
    assert result.exit_code == 2 and "HYBRID_SEARCH_TIMEOUT_S must be a number" in result.output
    assert not (tmp_path / "hybrid_search.db").exists()


def test_train_promote_abort_gives_an_unfinished_promotion_up(tmp_path):
    from hybrid_search import Chunk, CollectionConfig, Engine, StoreConfig
    from hybrid_search.errors import PromotionInProgressError
    from tests.processes import release_milvus_lite

    db = tmp_path / "kb.db"
    with Engine(StoreConfig(uri=str(db))) as engine:
        for name in ("kb_v1", "kb_v2"):
            engine.create_collection(CollectionConfig(name=name, dense=None, sparse=None))
        engine.index("kb_v1", [Chunk(doc_id="a", chunk_index=0, text="cats on mats")])
        engine.switch_alias("kb", "kb_v1")
        # What a promotion killed midway leaves: the lock, and a half-built version.
        engine.lock_writes("kb_v1", {"reason": "promoting", "alias": "kb", "target": "kb_v2"})
        with pytest.raises(PromotionInProgressError, match="'kb_v1' is being promoted"):
            engine.delete_documents("kb", ["a"])
    release_milvus_lite(db)
    result = runner.invoke(app, ["--uri", str(db), "train", "promote", "--alias", "kb", "--abort"])
    assert result.exit_code == 0, result.output
    assert '"dropped": "kb_v2"' in result.output
    with Engine(StoreConfig(uri=str(db))) as engine:
        assert engine.list_collections() == ["kb_v1"] and engine.resolve("kb") == "kb_v1"
        assert engine.delete_documents("kb", ["a"]) == 1  # writes are taken again
    release_milvus_lite(db)
