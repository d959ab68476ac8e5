"""PDF tables keep their rows: cells on one line, `` | ``-separated, reading order kept."""

from collections import Counter

import pypdfium2 as pdfium
import pytest

from indexers import pdf_blocks
from indexers.chunks import ChunkingConfig
from indexers.documents import ReadOptions
from indexers.sync import pipeline_fingerprint

pytestmark = pytest.mark.unit

PROSE = "Revenue grew in both segments. The table below shows revenue by reportable segment for the last two fiscal years."
# (x of each column, cell texts) per printed line; the header's date cells are
# stacked on two lines, as in the 10-K.
COLUMNS = (20, 90, 130, 170)
TABLE = [
    ["", "January 29,", "January 30,", "$"],
    ["", "2023", "2022", "Change"],
    ["Compute & Networking", "$ 15,068", "$ 11,046", "$ 4,022"],
    ["Graphics", "11,906", "15,868", "(3,962)"],
    ["Total", "$ 26,974", "$ 26,914", "$ 60"],
]


def _table_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    pdf.add_page()
    pdf.set_xy(20, 20)
    pdf.multi_cell(170, 5, PROSE)
    y = 45.0
    for row in TABLE:
        for x, cell in zip(COLUMNS, row):
            if cell:
                pdf.text(x, y, cell)
        y += 5
    pdf.set_xy(20, y + 5)
    pdf.multi_cell(170, 5, "After the table the text goes on.")
    return bytes(pdf.output())


def _plain_text(data: bytes) -> str:
    pdf = pdfium.PdfDocument(data)
    try:
        textpage = pdf[0].get_textpage()
        return textpage.get_text_range()
    finally:
        pdf.close()


def test_table_rows_read_as_lines_with_their_cells():
    _, blocks = pdf_blocks.pdf_blocks(_table_pdf(), "table.pdf")
    text = "\n".join(block.text for block in blocks)
    lines = text.split("\n")
    assert "January 29, | January 30, | $" in lines
    assert "2023 | 2022 | Change" in lines
    assert "Compute & Networking | $ 15,068 | $ 11,046 | $ 4,022" in lines
    assert "Graphics | 11,906 | 15,868 | (3,962)" in lines
    assert "Total | $ 26,974 | $ 26,914 | $ 60" in lines
    # reading order: prose, header, rows, prose
    order = [text.index(s) for s in ("Revenue grew", "January 29,", "Compute &", "Graphics |", "Total |", "After the table")]
    assert order == sorted(order)
    # prose is not cut into cells
    assert "|" not in text[: text.index("January 29,")]
    assert "|" not in text[text.index("After the table") :]


def test_layout_text_has_exactly_the_words_of_pdfium_plain_text():
    data = _table_pdf()
    _, blocks = pdf_blocks.pdf_blocks(data, "table.pdf")
    layout_words = Counter(w for block in blocks for w in block.text.split() if w != "|")
    assert layout_words == Counter(_plain_text(data).split())


def test_the_extractor_is_in_the_ingest_fingerprint(monkeypatch):
    assert pdf_blocks.PDF_EXTRACTOR.startswith("pypdfium2 ") and "layout-rows" in pdf_blocks.PDF_EXTRACTOR
    before = pipeline_fingerprint(ReadOptions(), ChunkingConfig(), "tok")
    monkeypatch.setattr(pdf_blocks, "PDF_EXTRACTOR", "pypdfium2 9.9 layout-rows/2")
    assert pipeline_fingerprint(ReadOptions(), ChunkingConfig(), "tok") != before
