"""Milvus Lite connections survive idle time (pymilvus keepalive vs the Lite server)."""

from __future__ import annotations

import time

import pytest

from hybrid_search.store import LITE_GRPC_OPTIONS, MilvusStore

pytestmark = pytest.mark.integration


def test_lite_store_disables_keepalive_pings(tmp_path):
    store = MilvusStore(str(tmp_path / "k.db"))
    handler_options = dict(store.client._handler._grpc_options)
    for key, value in LITE_GRPC_OPTIONS.items():
        assert handler_options[key] == value


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
