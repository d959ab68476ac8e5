"""The Milvus store on Milvus Lite: connections survive idle time (pymilvus keepalive vs the Lite server), and
which calls ask for the latest writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hybrid_search.store import LITE_GRPC_OPTIONS, MilvusStore
from tests.recording_client import RecordingClient

pytestmark = pytest.mark.integration


def test_lite_store_disables_keepalive_pings(tmp_path):
    store = MilvusStore(str(tmp_path / "k.db"))
    handler_options = dict(store.client._handler._grpc_options)
    for key, value in LITE_GRPC_OPTIONS.items():
        assert handler_options[key] == value


def test_a_lite_child_slow_to_open_its_socket_is_waited_for(tmp_path, monkeypatch):
    # pymilvus gives the child 0.5 s, then connects once: on a busy machine
    # (two test workers on two cores) its socket could come later and the
    # open failed. The child here starts 2 s late.
    import milvus_lite.server as lite

    real = Path(lite.BIN_PATH)
    late = tmp_path / "bin"
    late.mkdir()
    (late / "milvus").write_text(f'#!/bin/sh\nsleep 2\nLD_LIBRARY_PATH="{real}" exec "{real / "milvus"}" "$@"\n')
    (late / "milvus").chmod(0o755)
    monkeypatch.setenv("BIN_PATH", str(late))
    store = MilvusStore(str(tmp_path / "late.db"), timeout_s=30)
    assert store.list_collections() == []
    store.close()


@pytest.mark.slow
def test_lite_file_reopens_after_idle_minute(tmp_path):
    # Regression: with pymilvus's 10 s keepalive the Lite server sent GOAWAY
    # "too many pings" after ~30 s idle and a second client of the file failed.
    uri = str(tmp_path / "idle.db")
    first = MilvusStore(uri)
    assert first.list_collections() == []
    time.sleep(45)
    second = MilvusStore(uri)
    assert second.list_collections() == []
    assert first.list_collections() == []


def test_reads_that_decide_writes_see_the_latest_writes_and_searches_do_not_wait(tmp_path):
    # On a Milvus server, pymilvus' default (Bounded) may answer from a
    # snapshot seconds old: a re-index's stale-chunk delete, a document read
    # back or a write lock checked right after a write would miss it.
    from hybrid_search import Chunk, CollectionConfig, Engine, SearchOptions, StoreConfig
    from hybrid_search.errors import PromotionInProgressError

    engine = Engine(StoreConfig(uri=str(tmp_path / "c.db")))
    engine.create_collection(CollectionConfig(name="kb", dense=None, sparse=None))
    engine.index("kb", [Chunk("doc", i, f"part {i} about cats") for i in range(3)])
    recording = RecordingClient(engine.store.client)
    engine.store.client = recording

    engine.index("kb", [Chunk("doc", 0, "the only part about cats")])  # removes chunks 1 and 2
    assert [c.text for c in engine.get_document("kb", "doc")] == ["the only part about cats"]
    assert engine.list_documents("kb") == [("doc", 1)]
    assert engine.collection_info("kb").chunks == 1
    engine.lock_writes("kb", {"reason": "promoting", "alias": "live", "target": "kb2"})
    with pytest.raises(PromotionInProgressError):
        engine.check_writable("kb")  # a lock set a moment ago is seen
    engine.unlock_writes("kb")
    engine.check_writable("kb")
    management = list(recording.calls)
    engine.search("kb", "cats")  # the first search also asks whether the collection holds rows at all
    recording.calls.clear()
    hits = engine.search("kb", "cats", SearchOptions(k=1, paths=("bm25",)))
    searching = list(recording.calls)
    recording.calls.clear()
    engine.delete_documents("kb", ["doc"])
    assert engine.get_document("kb", "doc") == []
    management += recording.calls
    engine.close()

    # (method, filter, consistency level) of each read or delete
    def reads(calls):
        return [
            (c.method, c.kwargs.get("filter", ""), c.kwargs.get("consistency_level"))
            for c in calls
            if c.method in ("query", "delete", "search")
        ]

    management, searching = reads(management), reads(searching)
    assert [h.doc_id for h in hits.hits] == ["doc"]
    assert {method for method, _, _ in management} == {"query", "delete"}, management
    assert [call for call in management if call[2] != "Strong"] == []
    assert searching and all(level is None for _, _, level in searching), searching
