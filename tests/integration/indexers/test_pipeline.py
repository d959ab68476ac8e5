"""The sync pipeline end to end: a folder of every supported kind (and bad
files) indexed into Milvus Lite with the tiny models, re-run, changed,
shrunk, deleted; the CLI's exit codes and summary; the real documents in
shared/documents when they are present."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybrid_search import CollectionConfig, DenseEncoderConfig, Engine, RuntimeConfig, StoreConfig
from hybrid_search.cli import app
from indexers.chunks import ChunkingConfig
from indexers.documents import ReadOptions
from indexers.pipeline import IngestConfig, IngestProgress, IngestSummary, ingest
from indexers.sync import FILE_HASH_KEY, ROOT_KEY

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DOCUMENTS = REPO_ROOT.parent / "shared" / "documents"

CONFIG = IngestConfig(
    read=ReadOptions(id_field="id", title_field="title", metadata_fields=("lang",)),
    chunking=ChunkingConfig(max_tokens=48, overlap_tokens=0),
    batch_size=8,
)

SENTENCES = [
    "The cat sat on the mat.",
    "A dog chased the cat around the garden.",
    "Milvus is an open source vector database built for similarity search.",
    "Hybrid search combines dense retrieval with sparse lexical retrieval.",
    "The company reported record revenue and profit in the fourth quarter.",
    "Quarterly revenue grew twelve percent while operating costs fell.",
]

MARKDOWN = "# Guide\n\n" + "\n\n".join(
    f"## Part {i}\n\n" + " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(6)) for i in range(4)
)
HTML = """<html><head><title>Quarterly Report</title></head><body>
<h1>Quarterly Report</h1><p>Revenue grew strongly this quarter.</p>
<h2>Segments</h2><table><tr><th>Segment</th><th>Revenue</th></tr>
<tr><td>Data Center</td><td>3,833</td></tr><tr><td>Gaming</td><td>1,574</td></tr></table>
</body></html>"""
RECORDS = [
    {"id": "r1", "title": "Cats", "text": "The cat sat on the mat.", "lang": "en"},
    {"id": "r2", "title": "Dogs", "text": "A dog chased the cat around the garden.", "lang": "en"},
    {"id": "r3", "title": "Milvus", "text": "Milvus is an open source vector database.", "lang": "en"},
]


def _pdf(path: Path, pages: list[str], user_password: str | None = None) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    if user_password is not None:
        pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    path.write_bytes(bytes(pdf.output()))


def _docx(path: Path, extra: str | None = None) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Employee Handbook"
    d.add_heading("Leave", level=1)
    d.add_paragraph("Annual leave is 20 days. Unused days carry over.")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Grade", "Days", "Notes"), ("A", "20", "standard"), ("B", "25", "senior")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    if extra:
        d.add_paragraph(extra)
    d.save(str(path))


def _write_records(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _make_folder(root: Path, *, bad: bool = True) -> Path:
    folder = root / "docs"
    folder.mkdir(parents=True)
    (folder / "guide.md").write_text(MARKDOWN, encoding="utf-8")
    (folder / "notes.txt").write_text("Plain notes.\n\nThe weather today is sunny with a light wind.\n", encoding="utf-8")
    (folder / "report.html").write_text(HTML, encoding="utf-8")
    # Each page is too long to share a 48-token chunk with the other.
    _pdf(folder / "paper.pdf", [" ".join(SENTENCES[:3]) + " Page one.", " ".join(SENTENCES[3:]) + " Page two."])
    _docx(folder / "handbook.docx")
    _write_records(folder / "records.jsonl", RECORDS)
    if bad:
        (folder / "empty.txt").write_bytes(b"")
        (folder / "junk.txt").write_bytes(bytes(range(256)) * 40)
        _pdf(folder / "locked.pdf", ["secret"], user_password="pw")
    return folder


GOOD_DOCS = ["docs/guide.md", "docs/handbook.docx", "docs/notes.txt", "docs/paper.pdf", "docs/report.html", "r1", "r2", "r3"]


@pytest.fixture
def engine(tiny_models, tmp_path):
    engine = Engine(StoreConfig(uri=str(tmp_path / "kb.db")), runtime=RuntimeConfig(device="cpu", batch_size=8))
    engine.create_collection(
        CollectionConfig(name="kb", dense=DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"), sparse=None)
    )
    yield engine
    engine.close()


def rows(engine: Engine, collection: str = "kb") -> dict[str, dict]:
    """Every stored row by id, with what decides equality of two indexes."""
    fields = ["id", "doc_id", "chunk_index", "text", "source", "page", "heading", "metadata"]
    return {r["id"]: {f: r.get(f) for f in fields} for r in engine.store.iterate(collection, "", fields)}


class Recorder(IngestProgress):
    def __init__(self) -> None:
        self.planned: list[int] = []
        self.files: list[tuple[str, str]] = []
        self.chunks: list[int] = []

    def files_planned(self, total: int) -> None:
        self.planned.append(total)

    def file_done(self, source: str, status: str) -> None:
        self.files.append((source, status))

    def chunks_written(self, count: int) -> None:
        self.chunks.append(count)


def run(engine: Engine, folder: Path) -> IngestSummary:
    return ingest(engine, "kb", [folder], CONFIG)


def test_first_run_indexes_good_files_and_reports_bad_ones(engine, tmp_path):
    folder = _make_folder(tmp_path)
    progress = Recorder()
    summary = ingest(engine, "kb", [folder], CONFIG, progress)

    assert sum(progress.chunks) == summary.chunks_written and max(progress.chunks) <= CONFIG.batch_size
    assert sorted(status for _, status in progress.files) == ["indexed"] * 6 + ["skipped"] * 3
    assert summary.files_seen == 9 and summary.files_indexed == 6 and summary.files_unchanged == 0
    assert {(s.source, s.reason) for s in summary.skipped} == {
        ("empty.txt", "empty"),
        ("junk.txt", "binary"),
        ("locked.pdf", "encrypted"),
    }
    assert all(s.detail for s in summary.skipped) and summary.failed
    docs = dict(engine.list_documents("kb"))
    assert sorted(docs) == GOOD_DOCS
    assert summary.documents_written == 8 and summary.chunks_written == sum(docs.values()) == engine.store.count("kb")
    assert docs["docs/guide.md"] >= 4  # one chunk per part at least
    assert set(summary.stage_seconds) >= {"scan", "state", "hash", "read", "chunk", "encode", "write", "delete"}

    # Structure made it into the chunks: pages, heading paths, table text, record fields.
    pdf = engine.get_document("kb", "docs/paper.pdf")
    assert [c.page for c in pdf] == [1, 2] and "revenue" in pdf[1].text and "cat" in pdf[0].text
    guide = engine.get_document("kb", "docs/guide.md")
    assert ("Guide", "Part 2") in {c.heading_path for c in guide}
    assert [c.chunk_index for c in guide] == list(range(len(guide)))
    report = engine.get_document("kb", "docs/report.html")
    assert any("Data Center | 3,833" in c.text and c.heading_path == ("Quarterly Report", "Segments") for c in report)
    handbook = engine.get_document("kb", "docs/handbook.docx")
    assert any("Grade | Days | Notes" in c.text and c.heading_path == ("Leave",) for c in handbook)
    (record,) = engine.get_document("kb", "r2")
    assert record.title == "Dogs" and record.source == "records.jsonl" and record.metadata == {"lang": "en"}

    # Again: nothing is read, nothing is written, everything is unchanged;
    # the bad files are reported again (they are still bad).
    before = rows(engine)
    progress = Recorder()
    again = ingest(engine, "kb", [folder], CONFIG, progress)
    assert again.files_unchanged == 6 and again.files_indexed == 0
    assert again.chunks_written == 0 and again.documents_written == 0 and again.chunks_removed == 0
    assert again.documents_unchanged == 8 and again.chunks_unchanged == len(before)
    assert progress.planned == [9] and progress.chunks == []
    assert sorted(progress.files) == [
        ("empty.txt", "skipped"),
        ("guide.md", "unchanged"),
        ("handbook.docx", "unchanged"),
        ("junk.txt", "skipped"),
        ("locked.pdf", "skipped"),
        ("notes.txt", "unchanged"),
        ("paper.pdf", "unchanged"),
        ("records.jsonl", "unchanged"),
        ("report.html", "unchanged"),
    ]
    assert len(again.skipped) == 3
    assert rows(engine) == before


def test_changed_shrunk_deleted_files_and_records(engine, tmp_path):
    folder = _make_folder(tmp_path, bad=False)
    first = run(engine, folder)
    assert not first.failed
    before = rows(engine)
    guide_chunks = len(engine.get_document("kb", "docs/guide.md"))

    # Shrink one file: only its document is written, its stale tail goes.
    (folder / "guide.md").write_text("# Guide\n\nNow only one short part.\n", encoding="utf-8")
    changed = run(engine, folder)
    assert changed.files_indexed == 1 and changed.files_unchanged == 5
    assert changed.documents_written == 1 and changed.chunks_written == 1
    assert changed.chunks_removed == guide_chunks - 1 and changed.documents_removed == 0
    (only,) = engine.get_document("kb", "docs/guide.md")
    assert only.text == "Now only one short part." and only.chunk_index == 0
    after = rows(engine)
    assert {k: v for k, v in after.items() if not k.startswith("docs/guide.md#")} == {
        k: v for k, v in before.items() if not k.startswith("docs/guide.md#")
    }

    # Grow a file: more chunks, all of them new.
    _docx(folder / "handbook.docx", extra=" ".join(SENTENCES * 3))
    grown = run(engine, folder)
    assert grown.files_indexed == 1 and grown.documents_written == 1 and grown.chunks_removed == 0
    assert len(engine.get_document("kb", "docs/handbook.docx")) > len(
        [k for k in before if k.startswith("docs/handbook.docx#")]
    )

    # Delete a file: its chunks go, nothing else changes.
    (folder / "paper.pdf").unlink()
    deleted = run(engine, folder)
    assert deleted.documents_removed == 1 and deleted.chunks_removed == 2 and deleted.chunks_written == 0
    assert engine.get_document("kb", "docs/paper.pdf") == []

    # Drop a record from the JSONL file: that record's document goes, the
    # others are neither re-encoded nor left with the old file's stamp.
    _write_records(folder / "records.jsonl", [RECORDS[0], RECORDS[2]])
    dropped = run(engine, folder)
    assert dropped.documents_removed == 1 and dropped.chunks_written == 0 and dropped.documents_restamped == 2
    assert engine.get_document("kb", "r2") == [] and engine.get_document("kb", "r1")
    stamps = {r["metadata"][FILE_HASH_KEY] for r in rows(engine).values() if r["source"] == "records.jsonl"}
    assert len(stamps) == 1

    # Edit one record: only it is written.
    _write_records(folder / "records.jsonl", [RECORDS[0] | {"text": "The cat sat on the red mat."}, RECORDS[2]])
    edited = run(engine, folder)
    assert edited.documents_written == 1 and edited.chunks_written == 1 and edited.documents_restamped == 1
    assert engine.get_document("kb", "r1")[0].text == "The cat sat on the red mat."

    # And then the folder is in sync: a run does nothing at all.
    settled = run(engine, folder)
    assert settled.files_unchanged == 5 and settled.chunks_written == 0 and settled.documents_removed == 0
    assert settled.documents_restamped == 0 and "read" not in settled.stage_seconds


def test_incremental_runs_end_like_a_clean_run(engine, tiny_models, tmp_path):
    """The state after a series of edits equals a fresh index of the final folder."""
    folder = _make_folder(tmp_path / "a", bad=False)
    run(engine, folder)
    (folder / "guide.md").write_text(MARKDOWN.replace("Part 3", "Part three"), encoding="utf-8")
    (folder / "notes.txt").unlink()
    _write_records(folder / "records.jsonl", [RECORDS[2], RECORDS[0] | {"id": "r4"}])
    (folder / "sub").mkdir()
    (folder / "sub" / "new.md").write_text("# New\n\nA new file arrived.\n", encoding="utf-8")
    run(engine, folder)

    clean = Engine(StoreConfig(uri=str(tmp_path / "clean.db")), runtime=RuntimeConfig(device="cpu", batch_size=8))
    try:
        clean.create_collection(
            CollectionConfig(name="kb", dense=DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"), sparse=None)
        )
        ingest(clean, "kb", [folder], CONFIG)
        assert rows(engine) == rows(clean)
    finally:
        clean.close()


def test_single_files_leave_the_rest_of_their_folder_alone(engine, tmp_path):
    folder = _make_folder(tmp_path, bad=False)
    run(engine, folder)
    (folder / "notes.txt").write_text("Changed notes.\n", encoding="utf-8")
    summary = ingest(engine, "kb", [folder / "notes.txt"], CONFIG)
    assert summary.files_seen == 1 and summary.documents_written == 1 and summary.documents_removed == 0
    assert sorted(dict(engine.list_documents("kb"))) == GOOD_DOCS
    assert engine.get_document("kb", "docs/notes.txt")[0].text == "Changed notes."
    assert {r["metadata"][ROOT_KEY] for r in rows(engine).values()} == {"docs"}


def test_duplicate_record_ids_across_files_keep_the_first_file(engine, tmp_path):
    folder = _make_folder(tmp_path, bad=False)
    (folder / "more.jsonl").write_text(
        json.dumps({"id": "r1", "text": "A different r1."}) + "\n{not json\n" + json.dumps({"id": "r9", "text": "Nine."}) + "\n",
        encoding="utf-8",
    )
    expected = [("more.jsonl:2", "bad_record"), ("records.jsonl", "duplicate_id")]
    summary = run(engine, folder)
    assert sorted((s.source, s.reason) for s in summary.skipped) == expected
    assert engine.get_document("kb", "r1")[0].source == "more.jsonl"  # "more.jsonl" < "records.jsonl"
    assert [c.source for c in engine.get_document("kb", "r2")] == ["records.jsonl"]
    before = rows(engine)
    # Stable: the next runs write nothing and keep reporting the problems
    # (files holding left-out records are read again, like bad files).
    for _ in range(2):
        again = run(engine, folder)
        assert again.chunks_written == 0 and again.documents_restamped == 0 and again.documents_removed == 0
        assert sorted((s.source, s.reason) for s in again.skipped) == expected
        assert rows(engine) == before


# --- the command line -----------------------------------------------------------


def _cli_config(tmp_path: Path, tiny_models) -> Path:
    config = tmp_path / "hs.toml"
    config.write_text(
        f'[store]\nuri = "{tmp_path / "cli.db"}"\n[runtime]\ndevice = "cpu"\n[collection]\nname = "kb"\n'
        f'dense_model = "{tiny_models.dense}"\ndense_kind = "sentence-transformers"\nno_sparse = true\n',
        encoding="utf-8",
    )
    return config


def test_cli_exit_codes_and_summary(tiny_models, tmp_path):
    config = _cli_config(tmp_path, tiny_models)
    folder = _make_folder(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "index", str(folder), "--max-tokens", "48"])
    assert result.exit_code == 3, result.output  # bad files were skipped
    out = result.output
    flat = re.sub(r"[\s│]+", " ", out)  # the table wraps long cells to the terminal width
    assert "files or records skipped 3 " in flat, out
    assert re.search(r"time \d+\.\ds \(scan \d+\.\ds, state", flat), out
    for stage in ("hash", "read", "chunk", "encode", "write", "delete"):
        assert re.search(rf"\b{stage} \d+\.\ds", flat), out
    assert re.search(r"throughput [\d.]+ chunks/s", flat), out
    assert "skipped empty.txt: empty" in out and "skipped junk.txt: binary" in out
    assert "skipped locked.pdf: encrypted" in out

    for name in ("empty.txt", "junk.txt", "locked.pdf"):
        (folder / name).unlink()
    result = runner.invoke(app, ["--config", str(config), "index", str(folder), "--max-tokens", "48"])
    assert result.exit_code == 0, result.output
    assert re.search(r"chunks written\s*│\s*0 │", result.output), result.output
    assert re.search(r"files unchanged\s*│\s*6 │", result.output), result.output


# --- the real documents -----------------------------------------------------------

SHARED_FILES = [
    "unstructured_example_docs/example-10k.html",
    "unstructured_example_docs/docx-tables.docx",
    "unstructured_example_docs/fake-memo.pdf",
]
SHARED_SLOW_FILES = ["nvidia_10k/nvidia-sec-10k-2022.pdf", "unstructured_example_docs/handbook-872p.docx"]


def _copy_shared(tmp_path: Path, names: list[str]) -> Path:
    if not SHARED_DOCUMENTS.is_dir():
        pytest.skip(f"{SHARED_DOCUMENTS} is not available")
    folder = tmp_path / "documents"
    for name in names:
        source = SHARED_DOCUMENTS / name
        if not source.is_file():
            pytest.skip(f"{source} is not available")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / name)  # a copy: shared/ is never modified
    return folder


def _shared_engine(tiny_models, tmp_path: Path) -> Engine:
    engine = Engine(StoreConfig(uri=str(tmp_path / "shared.db")), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(
        CollectionConfig(name="kb", dense=DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"), sparse=None)
    )
    return engine


def test_shared_documents_land_in_chunks_and_stay_in_sync(tiny_models, tmp_path):
    folder = _copy_shared(tmp_path, SHARED_FILES)
    engine = _shared_engine(tiny_models, tmp_path)
    try:
        first = ingest(engine, "kb", [folder])
        assert not first.failed and first.files_indexed == 3
        html = engine.get_document("kb", "documents/unstructured_example_docs/example-10k.html")
        assert len(html) > 100
        assert any(c.heading_path == ("ITEM 1A. RISK FACTORS",) for c in html)
        assert any("Total current assets" in c.text and " | " in c.text for c in html)
        tables = engine.get_document("kb", "documents/unstructured_example_docs/docx-tables.docx")
        assert "Header Col 1 | Header Col 2" in tables[0].text
        (memo,) = engine.get_document("kb", "documents/unstructured_example_docs/fake-memo.pdf")
        assert memo.page == 1 and "20,000 bottles of water" in memo.text

        second = ingest(engine, "kb", [folder])
        assert second.chunks_written == 0 and second.files_unchanged == 3 and second.chunks_unchanged == first.chunks_written

        import docx

        changed = folder / "unstructured_example_docs" / "docx-tables.docx"
        d = docx.Document(str(changed))
        d.add_paragraph("An added closing paragraph.")
        d.save(str(changed))
        touched = ingest(engine, "kb", [folder])
        assert touched.files_indexed == 1 and touched.files_unchanged == 2 and touched.documents_written == 1
        assert touched.chunks_written == len(engine.get_document("kb", "documents/unstructured_example_docs/docx-tables.docx"))
        assert "An added closing paragraph." in engine.get_document("kb", "documents/unstructured_example_docs/docx-tables.docx")[-1].text

        changed.unlink()
        deleted = ingest(engine, "kb", [folder])
        assert deleted.documents_removed == 1 and deleted.chunks_written == 0
        assert engine.get_document("kb", "documents/unstructured_example_docs/docx-tables.docx") == []
        assert engine.store.count("kb") == first.chunks_written - len(tables)
    finally:
        engine.close()


@pytest.mark.slow
def test_shared_long_documents_keep_pages_and_headings(tiny_models, tmp_path):
    folder = _copy_shared(tmp_path, SHARED_SLOW_FILES)
    engine = _shared_engine(tiny_models, tmp_path)
    try:
        started = time.perf_counter()
        first = ingest(engine, "kb", [folder])
        assert not first.failed, first.skipped
        pdf = engine.get_document("kb", "documents/nvidia_10k/nvidia-sec-10k-2022.pdf")
        pages = [c.page for c in pdf]
        assert pages[0] == 1 and max(pages) >= 160 and pages == sorted(pages)
        assert "SECURITIES AND EXCHANGE COMMISSION" in pdf[0].text
        handbook = engine.get_document("kb", "documents/unstructured_example_docs/handbook-872p.docx")
        assert any(len(c.heading_path) == 3 and c.heading_path[0].startswith("CHAPTER 3") for c in handbook)
        second = ingest(engine, "kb", [folder])
        assert second.chunks_written == 0 and second.files_unchanged == 2
        print(f"long shared documents: {first.chunks_written} chunks in {time.perf_counter() - started:.1f}s")
    finally:
        engine.close()
