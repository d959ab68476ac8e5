"""Dropping what an alias serves is refused (naming the alias) unless asked to
drop both; user metadata keys reserved for bookkeeping are refused on the way in."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hybrid_search import Chunk, CollectionConfig, Engine, RuntimeConfig, StoreConfig
from hybrid_search.cli import app
from hybrid_search.errors import CollectionInUseError, InputError, PromotionInProgressError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_hybrid_search_env")]

runner = CliRunner()


def _bm25_only(engine: Engine, name: str) -> None:
    engine.create_collection(CollectionConfig(name=name, dense=None, sparse=None))
    engine.index(name, [Chunk(doc_id="a", chunk_index=0, text="cats sit on mats")])


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "kb.db")


def test_engine_refuses_to_drop_an_alias_target_and_drops_both_when_asked(db):
    with Engine(StoreConfig(uri=db), runtime=RuntimeConfig(device="cpu")) as engine:
        _bm25_only(engine, "kb_v1")
        _bm25_only(engine, "kb_v2")
        engine.switch_alias("kb", "kb_v1")
        engine.switch_alias("live", "kb_v1")
        for name in ("kb_v1", "kb"):  # by name or through the alias
            with pytest.raises(CollectionInUseError, match=r"served by alias 'kb', 'live'.*--with-aliases"):
                engine.drop_collection(name)
        assert engine.store.count("kb_v1") == 1 and engine.resolve("kb") == "kb_v1"
        assert engine.drop_collection("kb_v2") == []  # nothing serves it
        assert engine.drop_collection("kb", drop_aliases=True) == ["kb", "live"]
        assert engine.list_collections() == [] and engine.list_aliases() == {}
        assert engine.resolve("kb") == "kb"


def test_cli_drop_resolves_aliases_and_refuses_without_the_flag(db):
    with Engine(StoreConfig(uri=db)) as engine:
        _bm25_only(engine, "kb_v1")
        engine.switch_alias("kb", "kb_v1")
    refused = runner.invoke(app, ["--uri", db, "collections", "drop", "kb", "--yes"])
    assert refused.exit_code == 2
    assert "collection 'kb_v1' is served by alias 'kb'" in refused.output
    refused = runner.invoke(app, ["--uri", db, "collections", "drop", "kb_v1", "--yes"])
    assert refused.exit_code == 2 and "alias 'kb'" in refused.output
    dropped = runner.invoke(app, ["--uri", db, "collections", "drop", "kb", "--yes", "--with-aliases"])
    assert dropped.exit_code == 0, dropped.output
    assert "dropped kb_v1 and alias kb" in dropped.output
    with Engine(StoreConfig(uri=db)) as engine:
        assert engine.list_collections() == [] and engine.list_aliases() == {}


def test_engine_refuses_reserved_metadata_keys_and_keeps_bookkeeping_apart(db):
    with Engine(StoreConfig(uri=db)) as engine:
        engine.create_collection(CollectionConfig(name="docs", dense=None, sparse=None))
        with pytest.raises(InputError, match=r"metadata key '_secret' starts with '_'"):
            engine.index("docs", [Chunk(doc_id="a", chunk_index=0, text="cats", metadata={"ok": 1, "_secret": 2})])
        with pytest.raises(InputError, match="bookkeeping keys must start with '_'"):
            engine.index("docs", [Chunk(doc_id="a", chunk_index=0, text="cats", bookkeeping={"plain": 1})])
        assert engine.store.count("docs") == 0  # refused before anything was written
        engine.index(
            "docs",
            [Chunk(doc_id="a", chunk_index=0, text="cats", metadata={"ok": 1}, bookkeeping={"_state": "x"}, embed_text="Title\n\ncats")],
        )
        chunk = engine.get_document("docs", "a")[0]
        assert chunk.metadata == {"ok": 1} and chunk.bookkeeping["_state"] == "x"
        assert chunk.embed_text == "Title\n\ncats"  # the embedded text is rebuilt from the stored prefix
        hit = engine.search("docs", "cats").hits[0]
        assert hit.metadata == {"ok": 1}


def test_cli_index_refuses_a_reserved_metadata_field_and_skips_them_when_guessing(tmp_path, db, tiny_models):
    corpus = tmp_path / "records.jsonl"
    corpus.write_text(json.dumps({"_id": "r1", "text": "cats on mats", "dept": "pets", "_rank": 3}) + "\n", encoding="utf-8")
    base = ["--uri", db, "index", str(corpus), "-C", "docs", "--no-sparse", "--dense-model", str(tiny_models.dense), "--dense-kind", "sentence-transformers"]
    refused = runner.invoke(app, [*base, "--metadata-field", "_rank"])
    assert refused.exit_code == 2
    assert "metadata key '_rank' starts with '_'" in refused.output
    with Engine(StoreConfig(uri=db)) as engine:
        assert engine.list_collections() == []  # refused before the collection was made
    indexed = runner.invoke(app, base)
    assert indexed.exit_code == 0, indexed.output
    with Engine(StoreConfig(uri=db)) as engine:
        assert engine.get_document("docs", "r1")[0].metadata == {"dept": "pets"}


def test_the_version_an_alias_left_is_read_only_until_served_again(db):
    with Engine(StoreConfig(uri=db)) as engine:
        _bm25_only(engine, "kb_v1")
        _bm25_only(engine, "kb_v2")
        engine.switch_alias("kb", "kb_v1")
        assert engine.switch_alias("kb", "kb_v2") == "kb_v1"
        late = [Chunk(doc_id="late", chunk_index=0, text="written by a job that resolved the alias earlier")]
        with pytest.raises(PromotionInProgressError, match="'kb_v1' was promoted to 'kb_v2' behind alias 'kb'"):
            engine.index("kb_v1", late)
        engine.index("kb", late)  # through the alias: the served version
        assert engine.get_document("kb_v2", "late") and not engine.get_document("kb_v1", "late")
        assert engine.switch_alias("kb", "kb_v1") == "kb_v2"  # a rollback
        engine.index("kb_v1", late)
        with pytest.raises(PromotionInProgressError):
            engine.delete_documents("kb_v2", ["late"])
