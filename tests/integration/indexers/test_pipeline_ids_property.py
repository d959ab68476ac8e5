"""Property: records with ids drawn from the whole Unicode range (no lone
surrogates, no NUL) go through the indexing pipeline the CLI runs (read,
chunk, sync) into real Milvus Lite: listed, fetched, left alone when
unchanged, replaced when changed, removed when gone from the file, deleted."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_search import CollectionConfig, Engine, StoreConfig
from hybrid_search.types import MAX_DOC_ID_CHARS
from indexers.chunks import ChunkingConfig
from indexers.documents import ReadOptions
from indexers.pipeline import IngestConfig, ingest

pytestmark = pytest.mark.integration

ID_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
DOC_IDS = st.one_of(
    st.text(ID_CHARS, min_size=1, max_size=40),
    st.text(ID_CHARS, min_size=1, max_size=6).map(lambda s: (s * MAX_DOC_ID_CHARS)[:MAX_DOC_ID_CHARS]),
    st.sampled_from(["o'brien.md", 'a"b', "zz\\q#0", "x#1#2", "line\nbreak", "\u2028"]),
).filter(lambda s: s.strip())  # the record reader strips ids; blank ones are refused as bad records
ID_SETS = st.lists(DOC_IDS, min_size=1, max_size=6, unique_by=str.strip)
CONFIG = IngestConfig(read=ReadOptions(id_field="id", text_fields=("text",)), chunking=ChunkingConfig(max_tokens=16, overlap_tokens=0))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = Engine(StoreConfig(uri=str(tmp_path_factory.mktemp("ids") / "ids.db")))
    yield engine
    engine.close()


def write(folder, records):
    # ASCII-escaped JSON: every id is representable; raw C1 controls would make
    # the file look like binary junk to the reader's text check.
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def check_ids(engine, folder, ids):
    if engine.store.has_collection("kb"):
        engine.drop_collection("kb")
    engine.create_collection(CollectionConfig(name="kb", dense=None, sparse=None))
    long_text = " ".join(f"word{n}" for n in range(40))  # several chunks
    records = [{"id": doc_id, "text": f"alpha {i} {long_text if i == 0 else ''}"} for i, doc_id in enumerate(ids)]
    write(folder, records)
    summary = ingest(engine, "kb", [folder], CONFIG)
    assert not summary.skipped, summary.skipped
    stripped = [doc_id.strip() for doc_id in ids]
    listed = dict(engine.list_documents("kb"))
    assert set(listed) == set(stripped) and listed[stripped[0]] > 1 and all(listed[d] == 1 for d in stripped[1:])
    for i, doc_id in enumerate(stripped):
        chunks = engine.get_document("kb", doc_id)
        assert [c.chunk_index for c in chunks] == list(range(listed[doc_id]))
        assert {c.doc_id for c in chunks} == {doc_id} and chunks[0].text.startswith(f"alpha {i}")
    total = engine.collection_info("kb").chunks

    again = ingest(engine, "kb", [folder], CONFIG)  # unchanged: nothing written
    assert again.chunks_written == 0 and engine.collection_info("kb").chunks == total

    # the long document shrinks, the last record leaves the file
    records[0]["text"] = "beta 0"
    write(folder, records[:-1] if len(records) > 1 else records)
    ingest(engine, "kb", [folder], CONFIG)
    kept = stripped[:-1] if len(stripped) > 1 else stripped
    assert dict(engine.list_documents("kb")) == dict.fromkeys(kept, 1)
    assert [c.text for c in engine.get_document("kb", stripped[0])] == ["beta 0"]

    assert engine.delete_documents("kb", kept) == len(kept)
    assert engine.list_documents("kb") == [] and engine.collection_info("kb").chunks == 0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ids=ID_SETS)
def test_any_ids_through_the_pipeline(engine, tmp_path, ids):
    check_ids(engine, tmp_path, ids)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ids=ID_SETS)
def test_any_ids_through_the_pipeline_long_run(engine, tmp_path, ids):
    check_ids(engine, tmp_path, ids)
