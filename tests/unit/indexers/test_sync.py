"""Sync state logic on hand-made rows: what a collection holds for an ingest
root, which documents are complete, which files are unchanged, what is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexers.chunks import ChunkingConfig
from indexers.documents import Block, Document, ReadOptions
from indexers.pipeline import IngestConfig, _roots
from indexers.sync import (
    CHUNKS_KEY,
    DOC_HASH_KEY,
    FILE_DOCS_KEY,
    FILE_HASH_KEY,
    ROOT_KEY,
    StoredDocument,
    SyncState,
    document_sha256,
    file_sha256,
    pipeline_fingerprint,
)

pytestmark = pytest.mark.unit


def meta(file_key="F1", doc_sha="D1", chunks=2, file_docs=1, root="docs"):
    return {ROOT_KEY: root, FILE_HASH_KEY: file_key, DOC_HASH_KEY: doc_sha, CHUNKS_KEY: chunks, FILE_DOCS_KEY: file_docs}


def stored(doc_id="docs/a.md", source="a.md", rows=((0, {}), (1, {}))):
    doc = StoredDocument(doc_id, source)
    for index, overrides in rows:
        doc.add_row(index, meta() | overrides)
    return doc


def state_of(*docs: StoredDocument) -> SyncState:
    return SyncState("docs", {d.doc_id: d for d in docs})


# --- complete, incomplete and mixed documents ---------------------------------


def test_all_positions_with_matching_hashes_is_complete():
    doc = stored()
    assert doc.complete and doc.consistent
    assert (doc.file_sha256, doc.doc_sha256, doc.expected_chunks, doc.file_docs) == ("F1", "D1", 2, 1)


@pytest.mark.parametrize(
    "rows",
    [
        ((0, {}),),  # the last chunk never arrived
        ((1, {}),),  # the first chunk never arrived
        ((0, {}), (1, {}), (2, {})),  # a chunk beyond the count (a stale tail)
    ],
    ids=["missing-tail", "missing-head", "extra-tail"],
)
def test_missing_or_extra_positions_are_incomplete(rows):
    assert not stored(rows=rows).complete


def test_rows_of_two_versions_are_incomplete_in_any_order():
    # v2 (3 chunks) was written over v1 (2 chunks) up to position 1, then the run died.
    new = {DOC_HASH_KEY: "D2", CHUNKS_KEY: 3, FILE_HASH_KEY: "F2"}
    for rows in (((0, new), (1, new), (2, {})), ((2, {}), (0, new), (1, new))):
        doc = stored(rows=rows)
        assert not doc.consistent and not doc.complete


def test_shrunk_version_with_old_tail_is_incomplete():
    # v2 has one chunk and was written; the stale v1 chunk 1 was not yet removed.
    doc = stored(rows=((0, {DOC_HASH_KEY: "D2", CHUNKS_KEY: 1}), (1, {})))
    assert not doc.complete


def test_mixed_file_stamps_keep_the_content_but_not_the_stamp():
    # An interrupted restamp: same document content, two file stamps.
    doc = stored(rows=((0, {}), (1, {FILE_HASH_KEY: "F2", FILE_DOCS_KEY: 3})))
    assert doc.complete
    assert doc.file_sha256 is None and doc.file_docs is None
    state = state_of(doc)
    assert state.document_unchanged("docs/a.md", "D1")
    assert not state.file_unchanged("a.md", "F1", state.by_source())
    assert not state.file_unchanged("a.md", "F2", state.by_source())


def test_rows_without_ingest_metadata_are_never_complete():
    doc = StoredDocument("x", "x.md")
    doc.add_row(0, {})
    assert not doc.complete


# --- unchanged files and documents ----------------------------------------------


def test_file_unchanged_needs_matching_key_complete_docs_and_the_doc_count():
    a = stored("r1", "r.jsonl", rows=((0, {FILE_DOCS_KEY: 2, CHUNKS_KEY: 1}),))
    b = stored("r2", "r.jsonl", rows=((0, {FILE_DOCS_KEY: 2, CHUNKS_KEY: 1}),))
    state = state_of(a, b)
    grouped = state.by_source()
    assert sorted(d.doc_id for d in grouped["r.jsonl"]) == ["r1", "r2"]
    assert state.file_unchanged("r.jsonl", "F1", grouped)
    assert not state.file_unchanged("r.jsonl", "F2", grouped)  # bytes or settings changed
    assert not state.file_unchanged("other.md", "F1", grouped)  # never indexed


def test_file_with_fewer_documents_than_it_yields_is_not_unchanged():
    # A new JSONL file of 3 records; the run died after 2 of them were written.
    a = stored("r1", "r.jsonl", rows=((0, {FILE_DOCS_KEY: 3, CHUNKS_KEY: 1}),))
    b = stored("r2", "r.jsonl", rows=((0, {FILE_DOCS_KEY: 3, CHUNKS_KEY: 1}),))
    state = state_of(a, b)
    assert not state.file_unchanged("r.jsonl", "F1", state.by_source())


def test_file_with_an_incomplete_document_is_not_unchanged():
    state = state_of(stored(rows=((0, {}),)))
    assert not state.file_unchanged("a.md", "F1", state.by_source())


def test_document_unchanged():
    state = state_of(stored(), stored("docs/b.md", "b.md", rows=((0, {}),)))
    assert state.document_unchanged("docs/a.md", "D1")
    assert not state.document_unchanged("docs/a.md", "D2")  # content changed
    assert not state.document_unchanged("docs/b.md", "D1")  # incomplete
    assert not state.document_unchanged("docs/c.md", "D1")  # never indexed


def test_needs_restamp_when_the_file_stamp_differs():
    state = state_of(stored())
    assert not state.needs_restamp("docs/a.md", "F1", 1)
    assert state.needs_restamp("docs/a.md", "F2", 1)
    assert state.needs_restamp("docs/a.md", "F1", 2)


# --- stale documents --------------------------------------------------------------


def test_stale_documents():
    state = state_of(
        stored("docs/gone.md", "gone.md"),
        stored("docs/kept.md", "kept.md"),
        stored("r1", "r.jsonl"),
        stored("r2", "r.jsonl"),
        stored("q1", "q.jsonl"),
    )
    live_sources = ["kept.md", "r.jsonl", "q.jsonl"]
    # r.jsonl was re-read and yields r1 only; q.jsonl was not re-read (unchanged or unreadable).
    stale = state.stale_documents(live_sources, live_doc_ids={"docs/kept.md", "r1", "q1"}, rewritten_sources={"r.jsonl"})
    assert stale == ["docs/gone.md", "r2"]
    # A file that was not re-read keeps its documents even if no live id names them.
    assert state.stale_documents(live_sources, live_doc_ids=set(), rewritten_sources=set()) == ["docs/gone.md"]


def test_single_file_scope_leaves_the_other_files_alone():
    state = state_of(stored("docs/a.md", "a.md"), stored("docs/b.md", "b.md"))
    scoped = state.restricted_to(["a.md"])
    assert list(scoped.documents) == ["docs/a.md"]
    assert scoped.stale_documents(["a.md"], {"docs/a.md"}, {"a.md"}) == []
    assert list(state.documents) == ["docs/a.md", "docs/b.md"]  # the original is untouched


def test_single_files_of_one_folder_form_one_root(tmp_path: Path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("b.md", "a.md", "c.md"):
        (folder / name).write_text("# x\n\ntext\n", encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "d.md").write_text("text\n", encoding="utf-8")
    roots = _roots([folder / "b.md", folder / "a.md", folder / "b.md", tmp_path / "other" / "d.md"], IngestConfig())
    assert [(r.label, [f.name for f in r.files], r.single_file) for r in roots] == [
        ("docs", ["a.md", "b.md"], True),
        ("other", ["d.md"], True),
    ]
    (whole,) = _roots([folder], IngestConfig())
    assert whole.label == "docs" and not whole.single_file and [f.name for f in whole.files] == ["a.md", "b.md", "c.md"]


# --- loading from the collection --------------------------------------------------


class _FakeStore:
    def __init__(self, rows):
        self.rows = rows
        self.calls = []

    def iterate(self, name, expression, fields):
        self.calls.append((name, expression, tuple(fields)))
        yield from self.rows


class _FakeEngine:
    def __init__(self, rows):
        self.store = _FakeStore(rows)

    def resolve(self, name):
        return {"alias": "real"}.get(name, name)


def test_load_groups_rows_by_document_and_filters_on_the_root():
    rows = [
        {"doc_id": "docs/a.md", "chunk_index": 1, "source": "a.md", "metadata": meta()},
        {"doc_id": "docs/a.md", "chunk_index": 0, "source": "a.md", "metadata": meta()},
        {"doc_id": "r1", "chunk_index": 0, "source": "r.jsonl", "metadata": meta(chunks=1, file_docs=2)},
        {"doc_id": "r2", "chunk_index": 0, "source": "r.jsonl", "metadata": None},
    ]
    engine = _FakeEngine(rows)
    state = SyncState.load(engine, "alias", "docs")
    ((name, expression, fields),) = engine.store.calls
    assert name == "real" and ROOT_KEY in expression and '"docs"' in expression
    assert {"doc_id", "chunk_index", "source", "metadata"} <= set(fields)
    assert state.documents["docs/a.md"].complete and state.documents["docs/a.md"].positions == {0, 1}
    assert state.documents["r1"].complete and not state.documents["r2"].complete
    assert not state.file_unchanged("r.jsonl", "F1", state.by_source())  # r2 is broken


# --- hashes ---------------------------------------------------------------------


def _doc(text="Hello world.", source="a.md", title="A", metadata=None):
    return Document(
        doc_id=source, source=source, title=title, blocks=(Block("paragraph", text),), format="markdown", metadata=metadata or {}
    )


def test_document_hash_covers_content_source_and_settings():
    base = document_sha256(_doc(), "fp1")
    assert base == document_sha256(_doc(), "fp1")
    assert base != document_sha256(_doc(text="Hello there."), "fp1")
    assert base != document_sha256(_doc(title="B"), "fp1")
    assert base != document_sha256(_doc(source="b.md"), "fp1")
    assert base != document_sha256(_doc(metadata={"year": 2024}), "fp1")
    assert base != document_sha256(_doc(), "fp2")


def test_fingerprint_changes_with_settings_that_change_chunks():
    base = pipeline_fingerprint(ReadOptions(), ChunkingConfig(), "tok")
    assert base == pipeline_fingerprint(ReadOptions(), ChunkingConfig(), "tok")
    assert base != pipeline_fingerprint(ReadOptions(), ChunkingConfig(max_tokens=128), "tok")
    assert base != pipeline_fingerprint(ReadOptions(text_fields=("body",)), ChunkingConfig(), "tok")
    assert base != pipeline_fingerprint(ReadOptions(), ChunkingConfig(), "other-tokenizer")


def test_file_sha256(tmp_path: Path):
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (3 << 20))
    assert file_sha256(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()
