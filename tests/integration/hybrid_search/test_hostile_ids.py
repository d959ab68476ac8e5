"""Document ids of any text (quotes, backslashes, control characters, 4,000
characters) through index, get, list, filters and delete on real Milvus Lite."""

from __future__ import annotations

import pytest

from hybrid_search import (
    Chunk,
    CollectionConfig,
    Engine,
    FilterCondition,
    InputError,
    ManifestMismatchError,
    RuntimeConfig,
    SearchOptions,
    StoreConfig,
)
from hybrid_search.types import MAX_DOC_ID_CHARS

pytestmark = pytest.mark.integration

HOSTILE_IDS = [
    "o'brien.md",
    'say "hi".md',
    "back\\slash\\q#0",
    "zz\\q#0",
    "q' OR '1'<>'",
    '" or doc_id != "',
    "hash#1#2",
    "new\nline\ttab\r",
    "\x01\x1f\x7f",
    "é中😀\U0010ffff",
    "x" * MAX_DOC_ID_CHARS,
    "😀" * MAX_DOC_ID_CHARS,
]


@pytest.fixture()
def engine(tmp_path):
    engine = Engine(StoreConfig(uri=str(tmp_path / "ids.db")), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(CollectionConfig(name="kb", dense=None, sparse=None))
    yield engine
    engine.close()


def chunks_of(doc_id: str, count: int, word: str = "alpha") -> list[Chunk]:
    return [Chunk(doc_id=doc_id, chunk_index=i, text=f"{word} part {i} of a document") for i in range(count)]


def test_any_text_id_indexes_lists_gets_and_deletes(engine):
    innocent = chunks_of("a.md", 1)
    hostile = [chunk for doc_id in HOSTILE_IDS for chunk in chunks_of(doc_id, 2)]
    report = engine.index("kb", innocent + hostile, batch_size=5)
    assert report.chunks_written == 1 + 2 * len(HOSTILE_IDS)
    assert engine.list_documents("kb") == sorted([("a.md", 1)] + [(doc_id, 2) for doc_id in HOSTILE_IDS])
    for doc_id in HOSTILE_IDS:
        got = engine.get_document("kb", doc_id)
        assert [(c.doc_id, c.chunk_index, c.id) for c in got] == [(doc_id, 0, f"{doc_id}#0"), (doc_id, 1, f"{doc_id}#1")]
    # re-indexing with fewer chunks removes the stale one, and nothing is duplicated
    engine.index("kb", chunks_of(HOSTILE_IDS[0], 1, "beta"))
    assert [c.text for c in engine.get_document("kb", HOSTILE_IDS[0])] == ["beta part 0 of a document"]
    assert engine.collection_info("kb").chunks == 1 + 2 * len(HOSTILE_IDS) - 1
    # a doc_id filter is exact for every id (it compiles to the id's digest)
    for doc_id in HOSTILE_IDS[1:]:
        hits = engine.search("kb", "alpha part", SearchOptions(k=50, filters=(FilterCondition("doc_id", "==", doc_id),))).hits
        assert {(h.doc_id, h.chunk_id) for h in hits} == {(doc_id, f"{doc_id}#0"), (doc_id, f"{doc_id}#1")}
    assert engine.delete_documents("kb", HOSTILE_IDS) == 2 * len(HOSTILE_IDS) - 1
    assert engine.list_documents("kb") == [("a.md", 1)]


def test_listing_pages_past_one_batch(engine):
    ids = [f'"{i}\\' for i in range(25)]
    engine.index("kb", [chunk for doc_id in ids for chunk in chunks_of(doc_id, 3)])
    rows = list(engine.store.iterate("kb", "", ["id", "doc_id"], batch_size=7))
    assert sorted(row["id"] for row in rows) == sorted(f"{doc_id}#{i}" for doc_id in ids for i in range(3))
    assert engine.list_documents("kb") == sorted((doc_id, 3) for doc_id in ids)


@pytest.mark.parametrize("doc_id", ["", "x" * (MAX_DOC_ID_CHARS + 1), "lone \ud800 surrogate", "nul\x00"])
def test_ids_that_cannot_be_stored_are_refused_before_writing(engine, doc_id):
    with pytest.raises(InputError, match="doc_id"):
        engine.index("kb", chunks_of(doc_id, 1))
    assert engine.collection_info("kb").chunks == 0
    assert engine.get_document("kb", doc_id) == []
    assert engine.delete_documents("kb", [doc_id]) == 0


def test_a_version_1_collection_is_refused_with_the_way_out(engine):
    import json

    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(
        auto_id=False, description=json.dumps({"format": "hybrid-search/collection", "schema_version": 1})
    )
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
    index = engine.store.client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    engine.store.client.create_collection("old", schema=schema, index_params=index)
    with pytest.raises(ManifestMismatchError, match=r"schema version 1.*re-index.*collections drop old"):
        engine.collection_info("old")
    engine.drop_collection("old")
    assert "old" not in engine.list_collections()
