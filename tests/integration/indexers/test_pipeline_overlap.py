"""The overlapped ingestion pipeline (reading, encoding and writing side by
side) against the sequential one, with the tiny dense and SPLADE models: the
same rows; a failure in the writer or the encoder stops the run before its
sync steps (restamp, delete) and a re-run ends exactly like a clean run;
progress counts a file once its chunks are written, on the caller's thread."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hybrid_search import Engine, RuntimeConfig, StoreConfig
from hybrid_search.errors import InputError, StoreError
from indexers.chunks import ChunkingConfig
from indexers.documents import ReadOptions
from indexers import pipeline
from indexers.pipeline import IngestConfig, IngestProgress, ingest
from tests.integration.indexers.test_pipeline import SENTENCES

pytestmark = pytest.mark.integration

OVERLAPPED = IngestConfig(
    read=ReadOptions(id_field="id", title_field="title"),
    chunking=ChunkingConfig(max_tokens=32, overlap_tokens=0),
    batch_size=4,
    prefetch_files=2,
    overlap=True,
)
SEQUENTIAL = replace(OVERLAPPED, overlap=False)
FIELDS = ["id", "doc_id", "chunk_index", "text", "bm25_text", "title", "source", "page", "heading", "metadata", "dense", "sparse"]


def _markdown(seed: int, parts: int, tag: str = "") -> str:
    sections = [f"## Part {p}\n\n" + " ".join(SENTENCES[(seed + p + j) % len(SENTENCES)] for j in range(4)) + tag for p in range(parts)]
    return f"# File {seed}\n\n" + "\n\n".join(sections) + "\n"


def _records(ids: list[int], tag: str = "") -> str:
    return "".join(json.dumps({"id": f"rec{i}", "title": f"Record {i}", "text": SENTENCES[i % 6] + tag}) + "\n" for i in ids)


def _version_1(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(12):
        (folder / f"f{i:02d}.md").write_text(_markdown(i, 1 + i % 3), encoding="utf-8")
    (folder / "records.jsonl").write_text(_records(list(range(8))), encoding="utf-8")
    return folder


def _version_2(folder: Path) -> None:
    for i in (0, 3, 6, 9):
        (folder / f"f{i:02d}.md").write_text(_markdown(i, 4 - i % 3, tag=" v2"), encoding="utf-8")
    (folder / "f05.md").unlink()
    (folder / "f20.md").write_text(_markdown(20, 2, tag=" new"), encoding="utf-8")
    # rec2 dropped, rec4 edited: the other records are restamped, not re-encoded.
    (folder / "records.jsonl").write_text(_records([0, 1, 3, 5, 6, 7]) + _records([4], tag=" Edited."), encoding="utf-8")


def _engine(tiny_models, path: Path) -> Engine:
    engine = Engine(StoreConfig(uri=str(path)), runtime=RuntimeConfig(device="cpu", batch_size=4))
    engine.create_collection(tiny_models.hybrid_collection("kb"))
    return engine


def _rows(engine: Engine, collection: str = "kb") -> dict[str, dict]:
    return {r["id"]: {f: r.get(f) for f in FIELDS} for r in engine.store.iterate(collection, "", FIELDS)}


def _assert_same(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert sorted(got) == sorted(want)
    for chunk_id, row in want.items():
        a, b = dict(got[chunk_id]), dict(row)
        dense_a, dense_b = np.asarray(a.pop("dense")), np.asarray(b.pop("dense"))
        sparse_a, sparse_b = a.pop("sparse"), b.pop("sparse")
        assert a == b, chunk_id
        # Batches mix other chunks in each run: vectors agree to float noise.
        assert np.allclose(dense_a, dense_b, atol=1e-4), chunk_id
        assert sparse_a.keys() == sparse_b.keys(), chunk_id
        assert np.allclose([sparse_a[k] for k in sparse_a], [sparse_b[k] for k in sparse_a], atol=1e-4), chunk_id


@pytest.fixture
def engine(tiny_models, tmp_path):
    engine = _engine(tiny_models, tmp_path / "kb.db")
    yield engine
    engine.close()


@pytest.mark.parametrize("chunk_ahead", [32, 2], ids=["records-chunked-on-read", "records-chunked-as-consumed"])
def test_overlapped_and_sequential_runs_write_the_same_rows(engine, tmp_path, monkeypatch, chunk_ahead):
    monkeypatch.setattr(pipeline, "CHUNK_AHEAD_DOCUMENTS", chunk_ahead)
    folder = _version_1(tmp_path / "docs")
    engine.create_collection(replace(engine.open_collection("kb"), name="seq"))
    overlapped = ingest(engine, "kb", [folder], OVERLAPPED)
    sequential = ingest(engine, "seq", [folder], SEQUENTIAL)
    assert overlapped.chunks_written == sequential.chunks_written > 4 * OVERLAPPED.batch_size
    assert overlapped.files_indexed == sequential.files_indexed == 13
    _assert_same(_rows(engine, "kb"), _rows(engine, "seq"))
    # ... and after an edit, incrementally too.
    _version_2(folder)
    overlapped, sequential = ingest(engine, "kb", [folder], OVERLAPPED), ingest(engine, "seq", [folder], SEQUENTIAL)
    assert (overlapped.documents_restamped, overlapped.documents_removed) == (sequential.documents_restamped, sequential.documents_removed)
    assert overlapped.documents_restamped > 0 and overlapped.documents_removed == 2
    _assert_same(_rows(engine, "kb"), _rows(engine, "seq"))


class _FailAt:
    """Wraps a callable to raise ``error`` on its ``n``-th call (1-based)."""

    def __init__(self, call, n: int, error: Exception) -> None:
        self.call, self.n, self.error, self.calls = call, n, error, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise self.error
        return self.call(*args, **kwargs)


@pytest.mark.parametrize("stage", ["write", "encode"])
def test_a_failing_stage_stops_before_the_sync_steps_and_a_rerun_ends_like_a_clean_run(stage, engine, tiny_models, tmp_path, monkeypatch):
    folder = _version_1(tmp_path / "docs")
    ingest(engine, "kb", [folder], OVERLAPPED)
    _version_2(folder)
    version_1 = _rows(engine)

    if stage == "write":
        failing = _FailAt(engine.store.upsert, 3, StoreError("write 4 chunks to 'kb': the disk is full"))
        monkeypatch.setattr(engine.store, "upsert", failing)
        expected = StoreError
    else:
        encoders = engine.encoders("kb")
        failing = _FailAt(encoders.encode_documents, 3, InputError("the encoder gave up"))
        monkeypatch.setattr(encoders, "encode_documents", failing)
        expected = InputError
    deletes: list[object] = []
    monkeypatch.setattr(engine, "delete_documents", lambda *a: deletes.append(a) or 0)

    with pytest.raises(expected):
        ingest(engine, "kb", [folder], OVERLAPPED)
    assert failing.calls == 3, f"the failing {stage} stage was called again after it failed"
    assert not deletes, "the delete step ran after a failed write"
    after = _rows(engine)
    # Two batches were written before the failure; the restamp of the
    # unchanged records and the deletion of rec2 and f05.md did not happen.
    changed = [i for i in after if after[i]["metadata"] != version_1.get(i, {}).get("metadata")]
    assert 0 < len(changed) <= 2 * OVERLAPPED.batch_size
    assert {"rec2#0", "docs/f05.md#0"} <= set(after)
    assert after["rec0#0"]["metadata"] == version_1["rec0#0"]["metadata"]
    assert not [t for t in threading.enumerate() if t.name.startswith(("index-", "ingest-read"))]

    monkeypatch.undo()
    ingest(engine, "kb", [folder], OVERLAPPED)
    clean = _engine(tiny_models, tmp_path / "clean.db")
    try:
        ingest(clean, "kb", [folder], SEQUENTIAL)
        _assert_same(_rows(engine), _rows(clean))
    finally:
        clean.close()


class _Recorder(IngestProgress):
    def __init__(self) -> None:
        self.written = 0
        self.planned = 0
        self.done: list[tuple[str, str, int, int]] = []  # source, status, written then, planned then
        self.threads: set[str] = set()

    def file_done(self, source: str, status: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.done.append((source, status, self.written, self.planned))

    def chunks_planned(self, more: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.planned += more

    def chunks_written(self, count: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.written += count


def test_progress_counts_a_file_once_its_chunks_are_written(engine, tmp_path):
    folder = _version_1(tmp_path / "docs")
    (folder / "empty.md").write_text("", encoding="utf-8")
    progress = _Recorder()
    summary = ingest(engine, "kb", [folder], OVERLAPPED, progress)
    assert progress.threads == {threading.current_thread().name}
    assert progress.written == progress.planned == summary.chunks_written
    indexed = [d for d in progress.done if d[1] == "indexed"]
    assert len(indexed) == 13 and ("empty.md", "skipped") in {(d[0], d[1]) for d in progress.done}
    # When a file is reported done, all chunks planned up to it are written:
    # files are planned and written in order, so that is exactly its own.
    assert all(written >= planned for _, _, written, planned in indexed)
    assert [d[0] for d in indexed] == sorted(d[0] for d in indexed)


def test_a_record_that_fails_to_chunk_as_consumed_is_left_out_and_keeps_its_stored_version(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "CHUNK_AHEAD_DOCUMENTS", 2)
    folder = _version_1(tmp_path / "docs")
    ingest(engine, "kb", [folder], OVERLAPPED)
    before = _rows(engine)
    (folder / "records.jsonl").write_text(_records(list(range(8)), tag=" Again."), encoding="utf-8")
    chunk_document = pipeline.chunk_document

    def failing(doc, *args):
        if doc.doc_id == "rec3":
            raise RuntimeError("tokenizer crashed")
        return chunk_document(doc, *args)

    monkeypatch.setattr(pipeline, "chunk_document", failing)
    summary = ingest(engine, "kb", [folder], OVERLAPPED)
    assert [(s.source, s.reason) for s in summary.skipped] == [("records.jsonl", "corrupt")]
    assert "rec3" in summary.skipped[0].detail and summary.documents_written == 7 and summary.documents_removed == 0
    after = _rows(engine)
    assert after["rec3#0"] == before["rec3#0"] and after["rec4#0"]["text"].endswith("Again.")
    # The file never looks unchanged while a record fails: the next run reads it again.
    monkeypatch.setattr(pipeline, "chunk_document", chunk_document)
    summary = ingest(engine, "kb", [folder], OVERLAPPED)
    assert not summary.skipped and summary.documents_written == 1 and _rows(engine)["rec3#0"]["text"].endswith("Again.")


@pytest.mark.parametrize(("device", "expected"), [("cpu", False), ("cuda", True)])
def test_the_default_overlaps_only_when_the_encoders_run_on_a_gpu(engine, tmp_path, monkeypatch, device, expected):
    # On a CPU the writer competes with the model for the same cores (2 cores:
    # overlapped 0.79x, sequential 0.92x of the bare encoders).
    import hybrid_search.engine as engine_module

    seen = []
    write_batches = engine_module.write_batches

    def recording(*args, overlap, **kwargs):
        seen.append(overlap)
        return write_batches(*args, overlap=overlap, **kwargs)

    monkeypatch.setattr(engine_module, "write_batches", recording)
    monkeypatch.setattr(type(engine.runtime), "resolved_device", lambda self: device)
    summary = ingest(engine, "kb", [_version_1(tmp_path / "docs")], replace(OVERLAPPED, overlap=None))
    assert summary.documents_written > 0 and seen and set(seen) == {expected}
