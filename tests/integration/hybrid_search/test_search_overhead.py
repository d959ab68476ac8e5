"""A search asks Milvus only its search call once the collection is open: the
alias is resolved from what this process knows of a Milvus Lite file (the file
is locked to one process) until its collections or settings change, and then
asked again, so an alias switch is followed at once."""

from __future__ import annotations

import pytest

from hybrid_search import Chunk, CollectionConfig, Engine, SearchOptions, StoreConfig
from tests.recording_client import RecordingClient

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_hybrid_search_env")]


def _bm25_collection(engine: Engine, name: str, text: str) -> None:
    engine.create_collection(CollectionConfig(name=name, dense=None, sparse=None))
    engine.index(name, [Chunk(doc_id=f"{name}-doc", chunk_index=0, text=text)])


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "kb.db")


def test_a_repeated_search_makes_one_milvus_call(db):
    with Engine(StoreConfig(uri=db)) as engine:
        _bm25_collection(engine, "kb_v1", "cats sit on mats")
        engine.switch_alias("kb", "kb_v1")  # the settings collection exists: resolving reads it
        options = SearchOptions(paths=("bm25",))
        for name in ("kb", "kb_v1"):
            assert engine.search(name, "cats", options).hits[0].doc_id == "kb_v1-doc"
        counting = RecordingClient(engine.store.client)
        engine.store.client = counting
        for name in ("kb", "kb_v1"):
            result = engine.search(name, "cats", options)
            assert result.collection == "kb_v1" and result.hits[0].doc_id == "kb_v1-doc"
        assert counting.methods == ["search", "search"]


def test_an_alias_switched_by_another_engine_is_followed_at_once(db):
    with Engine(StoreConfig(uri=db)) as serving, Engine(StoreConfig(uri=db)) as promoting:
        _bm25_collection(serving, "kb_v1", "cats sit on mats")
        _bm25_collection(serving, "kb_v2", "cats chase mice")
        promoting.switch_alias("kb", "kb_v1")
        assert serving.search("kb", "cats").hits[0].doc_id == "kb_v1-doc"
        promoting.switch_alias("kb", "kb_v2")
        assert serving.resolve("kb") == "kb_v2"
        assert serving.search("kb", "cats").hits[0].doc_id == "kb_v2-doc"
        promoting.drop_collection("kb_v1")
        # A collection created under a name nothing else claims is itself.
        assert serving.resolve("fresh") == "fresh"
        _bm25_collection(promoting, "fresh", "dogs bark")
        assert serving.search("fresh", "dogs").hits[0].doc_id == "fresh-doc"


def test_the_catalog_version_changes_with_collections_and_settings(db):
    with Engine(StoreConfig(uri=db)) as engine:
        versions = [engine.store.catalog_version]
        _bm25_collection(engine, "kb_v1", "cats")
        versions.append(engine.store.catalog_version)
        engine.index("kb_v1", [Chunk(doc_id="more", chunk_index=0, text="mats")])  # rows are not the catalog
        assert engine.store.catalog_version == versions[-1]
        engine.switch_alias("kb", "kb_v1")
        versions.append(engine.store.catalog_version)
        engine.drop_collection("kb", drop_aliases=True)
        versions.append(engine.store.catalog_version)
        assert versions == sorted(set(versions)), versions  # every change counted, none missed
