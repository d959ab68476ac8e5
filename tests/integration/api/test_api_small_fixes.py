"""Smaller fixes of issue 12: a wrong model kind is the caller's error (422),
an empty collection searches quietly, files that would give no chunks or
garbled text are reported as skipped, symlink loops are reported."""

from __future__ import annotations

import logging

import pytest

from hybrid_search import (
    CollectionConfig,
    Engine,
    RuntimeConfig,
    SearchOptions,
    StoreConfig,
)
from indexers.documents import read_file
from indexers.files import FileSelection, find_files

pytestmark = pytest.mark.integration


def test_bge_m3_kind_for_a_model_that_is_not_bge_m3_is_422(make_client, helpers):
    client = make_client()  # its default dense model is a sentence-transformers one
    response = client.post("/v1/collections", json={"name": "m3_kind", "dense": {"kind": "bge-m3"}, "sparse": None})
    error = helpers.assert_error(response, 422, field="dense.kind")
    assert "sparse_linear.pt" in error["message"]
    assert client.get("/v1/collections/m3_kind").status_code == 404


def test_searching_an_empty_collection_logs_no_error(tmp_path, caplog):
    engine = Engine(StoreConfig(uri=str(tmp_path / "empty.db")), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(CollectionConfig(name="empty", dense=None, sparse=None))
    with caplog.at_level(logging.DEBUG):
        assert engine.search("empty", "anything at all", SearchOptions(paths=("bm25",))).hits == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    from hybrid_search import Chunk

    engine.index("empty", [Chunk(doc_id="a", chunk_index=0, text="anything at all")])
    assert [h.doc_id for h in engine.search("empty", "anything").hits] == ["a"]
    engine.delete_documents("empty", ["a"])
    with caplog.at_level(logging.DEBUG):
        assert engine.search("empty", "anything").hits == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    engine.close()


def test_files_that_give_no_chunks_or_garbled_text_are_skipped_with_a_reason(tmp_path):
    (tmp_path / "heading.md").write_text("# Only a heading\n", encoding="utf-8")
    (tmp_path / "stray.txt").write_bytes(b"hello world \xff\xfe\xfd this is text")
    (tmp_path / "gbk.txt").write_bytes("向量数据库支持稠密向量和稀疏向量的检索。检索模型把文本变成向量。".encode("gbk"))
    heading = read_file(tmp_path / "heading.md")
    assert [(s.reason, s.detail) for s in heading.skipped] == [("no_text", "the file holds only headings, no body text")]
    stray = read_file(tmp_path / "stray.txt")
    assert [s.reason for s in stray.skipped] == ["undecodable"] and not stray.documents
    assert read_file(tmp_path / "gbk.txt").documents[0].text.startswith("向量数据库")


def test_symlink_loops_are_reported(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "note.md").write_text("# Note\n\nbody\n", encoding="utf-8")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a", target_is_directory=True)
    skipped: list = []
    files = find_files(tmp_path, FileSelection(follow_symlinks=True), skipped)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/b/note.md"]
    assert [(s.source, s.reason) for s in skipped] == [("a/b/up", "symlink_loop")]
