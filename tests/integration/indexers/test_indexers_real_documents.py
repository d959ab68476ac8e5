"""The readers and chunker on the real enterprise documents in shared/documents."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexers.chunks import ChunkingConfig, chunk_document, whitespace_token_counter
from indexers.documents import read_document
from indexers.files import find_files

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = Path(os.environ.get("HYBRID_SEARCH_DOCUMENTS", REPO_ROOT.parent / "shared" / "documents"))
CONFIG = ChunkingConfig(max_tokens=256, overlap_tokens=32)


def _path(rel: str) -> Path:
    p = DOCUMENTS / rel
    if not p.is_file():
        pytest.skip(f"{p} is not available")
    return p


@pytest.fixture(scope="module")
def tenk_pdf():
    # 169 pages: parsed once for the whole module.
    return read_document(_path("nvidia_10k/nvidia-sec-10k-2022.pdf"), root=DOCUMENTS)


@pytest.fixture(scope="module")
def tenk_html():
    return read_document(_path("unstructured_example_docs/example-10k.html"), root=DOCUMENTS)


@pytest.fixture(scope="module")
def handbook():
    return read_document(_path("unstructured_example_docs/handbook-872p.docx"), root=DOCUMENTS)


def _check_chunks(doc):
    chunks = chunk_document(doc, CONFIG, whitespace_token_counter)
    assert chunks
    for c in chunks:
        assert whitespace_token_counter(c.embed_text or c.text) <= CONFIG.max_tokens
        piece = doc.text[c.char_start : c.char_end]
        assert c.text == piece or c.text.endswith("\n" + piece)
    return chunks


def test_pdf_10k_keeps_page_numbers(tenk_pdf):
    assert tenk_pdf.doc_id == "nvidia_10k/nvidia-sec-10k-2022.pdf"
    pages = {b.page for b in tenk_pdf.blocks}
    assert min(pages) == 1 and max(pages) == 169 and len(pages) > 150
    # Pages are in order, and known text sits on its page.
    assert [b.page for b in tenk_pdf.blocks] == sorted(b.page for b in tenk_pdf.blocks)
    cover = " ".join(b.text for b in tenk_pdf.blocks if b.page == 1)
    assert "SECURITIES AND EXCHANGE COMMISSION" in cover and "NVIDIA" in cover
    chunks = _check_chunks(tenk_pdf)
    assert chunks[0].page == 1 and chunks[-1].page >= 160
    assert all(c.page is not None for c in chunks)
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)


def test_pdf_10k_revenue_by_segment_rows_keep_their_cells(tenk_pdf):
    page_42 = "\n".join(block.text for block in tenk_pdf.blocks if block.page == 42)
    lines = page_42.split("\n")
    assert "Compute & Networking | $ 15,068 | $ 11,046 | $ 4,022 | 36 %" in lines
    assert "Graphics | 11,906 | 15,868 | (3,962) | (25)%" in lines
    assert "Total | $ 26,974 | $ 26,914 | $ 60 | — %" in lines
    # the stacked header cells are rows again, in reading order before the figures
    assert "January 29, | January 30, | $ | %" in lines and "2023 | 2022 | Change | Change" in lines
    assert page_42.index("January 29,") < page_42.index("Compute & Networking |") < page_42.index("Total |")


def test_html_10k_yields_headings_and_table_text(tenk_html):
    headings = [b.text for b in tenk_html.blocks if b.kind == "heading"]
    assert "ITEM 1A. RISK FACTORS" in headings
    assert "ITEM 7. MANAGEMENT’S DISCUSSION AND ANALYSIS OF FINANCIAL CONDITION AND RESULTS OF OPERATIONS" in headings
    tables = [b.text for b in tenk_html.blocks if b.kind == "table"]
    assert len(tables) > 20
    assert any("Total current assets" in t and " | " in t for t in tables)
    # The hidden inline-XBRL header is not text.
    assert "xbrli" not in tenk_html.text.lower()
    chunks = _check_chunks(tenk_html)
    assert any(c.heading_path == ("ITEM 1A. RISK FACTORS",) for c in chunks)


def test_docx_handbook_yields_heading_paths(handbook):
    paths = {b.heading_path for b in handbook.blocks if b.kind != "heading"}
    assert any(len(p) == 3 and p[0].startswith("CHAPTER 3") for p in paths)
    levels = {b.level for b in handbook.blocks if b.kind == "heading"}
    assert levels == {1, 2, 3}
    chunks = _check_chunks(handbook)
    deep = [c for c in chunks if len(c.heading_path) == 3]
    assert deep and deep[0].embed_text.startswith("handbook-872p / CHAPTER")


def test_docx_tables_yield_table_text():
    doc = read_document(_path("unstructured_example_docs/docx-tables.docx"), root=DOCUMENTS)
    tables = [b.text for b in doc.blocks if b.kind == "table"]
    assert tables[0] == "Header Col 1 | Header Col 2\nLorem ipsum | A link example"
    assert len(tables) == 3
    chunks = _check_chunks(doc)
    assert "Header Col 1 | Header Col 2" in chunks[0].text


def test_whole_folder_walks_in_order():
    if not DOCUMENTS.is_dir():
        pytest.skip(f"{DOCUMENTS} is not available")
    files = [p.relative_to(DOCUMENTS).as_posix() for p in find_files(DOCUMENTS)]
    assert files == sorted(files)
    assert "nvidia_10k/nvidia-sec-10k-2022.pdf" in files
