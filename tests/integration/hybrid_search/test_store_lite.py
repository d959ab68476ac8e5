"""Milvus Lite connections survive idle time (pymilvus keepalive vs the Lite server)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hybrid_search.store import LITE_GRPC_OPTIONS, MilvusStore

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
