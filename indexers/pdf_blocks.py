"""PDF in, blocks out: the text layer page by page, 1-based page numbers kept.

pypdfium2 (PDFium) rather than pypdf: the same text from the 169-page 10-K in
1.6 s instead of 39 s, which decides how long a whole collection takes.
Running headers/footers are dropped and paragraphs are recovered from line
lengths; there is no OCR, so a scanned PDF reads as no text.

Table rows are rebuilt from the layout: PDFium's plain text gives a table's
stacked header cells one per line ("Year Ended\nJanuary 29,\n2023\n$\n
Change") and a row's cells separated by single spaces. Here each word gets
its box (PDFium character boxes of its first and last character), PDFium's
lines are split where it joined two visual lines, a line that sits at the
height of one of the few rows just before it (a stacked header cell) joins
that row, and words further apart than ``CELL_GAP`` character heights are
separate cells, written `` | ``-separated::

    January 29, | January 30, | $ | %
    Compute & Networking | $ 15,068 | $ 11,046 | $ 4,022 | 36 %

Reading order stays PDFium's (rows in the order they start), so prose and
multi-column pages read as before. ``PDF_EXTRACTOR`` names this method and the
PDFium binding's version; it is part of the ingest fingerprint, so a change of
either re-reads every file.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections import Counter
from importlib.metadata import version

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .blocks import Block, ReadError, normalize_newlines, paragraphs, plausible_title

__all__ = ["CELL_GAP", "PDF_EXTRACTOR", "pdf_blocks"]

# Bump the method number whenever the layout rules below change what is read.
PDF_EXTRACTOR = f"pypdfium2 {version('pypdfium2')} layout-rows/1"
# Words further apart than this many character heights are in different cells
# (a word space is about a third of a character height).
CELL_GAP = 1.2
# A line may join one of the last rows started (a table's stacked header cells
# are interleaved with the rows below them in PDFium's order); few enough that
# the columns of a two-column page never meet.
_ROW_WINDOW = 8
_CURRENCY = frozenset("$€£¥")
_WORD = re.compile(r"\S+")
_LINE = re.compile(r"[^\r\n]+")

log = logging.getLogger(__name__)

# PDFium is not thread-safe; a pipeline that reads files in threads must not
# enter it twice at once.
_PDFIUM_LOCK = threading.Lock()
# Ligature glyphs would otherwise make "ﬁnancial" a different term from "financial".
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"}
)
_PDF_JUNK = dict.fromkeys(map(ord, "\x00\x02\uffff"), None)
# PDFium reports a hyphen it judged to be a line-wrap hyphen as U+FFFE: at a
# line end the word was split and is joined again; elsewhere it is a real "-".
_PDF_WRAP_HYPHEN = re.compile("\ufffe\n?")


def _pdf_page_text(raw: str) -> str:
    text = normalize_newlines(raw).translate(_PDF_JUNK).translate(_LIGATURES)
    return _PDF_WRAP_HYPHEN.sub(lambda m: "" if m.group(0).endswith("\n") else "-", text)


def pdf_blocks(data: bytes, source: str) -> tuple[str | None, list[Block]]:
    """Title (from metadata, if plausible) and one block per paragraph, each
    with its 1-based page. Password-protected -> ``encrypted``; unparseable ->
    ``corrupt``; a PDF that is only scanned images gives no blocks."""
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            msg = str(exc)
            if "password" in msg.lower():
                raise ReadError(source, "encrypted", "PDF is password-protected") from exc
            raise ReadError(source, "corrupt", f"PDF could not be opened: {msg}") from exc
        try:
            meta_title = (pdf.get_metadata_dict().get("Title") or "").strip()
            pages: list[str] = []
            for i in range(len(pdf)):
                page = pdf[i]
                try:
                    textpage = page.get_textpage()
                    try:
                        pages.append(_layout_text(textpage))
                    finally:
                        textpage.close()
                except pdfium.PdfiumError as exc:  # one bad page should not lose the rest
                    log.warning("%s: page %d unreadable: %s", source, i + 1, exc)
                    pages.append("")
                finally:
                    page.close()
        finally:
            pdf.close()
    pages = [_pdf_page_text(t) for t in pages]
    pages = _drop_running_lines(pages)
    blocks = [
        Block("paragraph", para, page=n) for n, text in enumerate(pages, start=1) for para in _pdf_paragraphs(text)
    ]
    return plausible_title(meta_title), blocks


# A word and its box: (text, left, bottom, right, top) in PDF points.
_Word = tuple[str, float, float, float, float]


def _overlap(low_a: float, high_a: float, low_b: float, high_b: float) -> float:
    return min(high_a, high_b) - max(low_a, low_b)


def _visual_lines(textpage: pdfium.PdfTextPage, text: str) -> list[list[_Word]]:
    """PDFium's lines as lists of boxed words, split again where PDFium joined
    two visual lines (after a wrap hyphen). Two PDFium calls per word."""
    left, right, bottom, top = ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()

    def box(index: int) -> tuple[float, float, float, float]:
        pdfium_c.FPDFText_GetCharBox(textpage, index, left, right, bottom, top)
        return left.value, bottom.value, right.value, top.value

    lines: list[list[_Word]] = []
    for line in _LINE.finditer(text):
        words: list[_Word] = []
        for match in _WORD.finditer(line.group()):
            first, last = line.start() + match.start(), line.start() + match.end() - 1
            l0, b0, r0, t0 = box(first)
            l1, b1, r1, t1 = box(last) if last != first else (l0, b0, r0, t0)
            word = (match.group(), min(l0, l1), min(b0, b1), max(r0, r1), max(t0, t1))
            if words and (_overlap(words[-1][2], words[-1][4], word[2], word[4]) <= 0 or word[1] < words[-1][1]):
                lines.append(words)
                words = []
            words.append(word)
        if words:
            lines.append(words)
    return lines


def _rows(lines: list[list[_Word]]) -> list[list[_Word]]:
    """Lines at the same height as a recent row, beside (never over) its words, join it."""
    rows: list[tuple[list[float], list[_Word]]] = []  # ([bottom, top], words)
    for words in lines:
        left, right = min(w[1] for w in words), max(w[3] for w in words)
        bottom, top = min(w[2] for w in words), max(w[4] for w in words)
        target = None
        for span, row_words in rows[-_ROW_WINDOW:]:
            shared = _overlap(bottom, top, span[0], span[1])
            if shared > 0 and shared >= 0.5 * min(top - bottom, span[1] - span[0]) and all(
                _overlap(left, right, w[1], w[3]) <= 0 for w in row_words
            ):
                target = (span, row_words)
        if target is None:
            rows.append(([bottom, top], list(words)))
        else:
            span, row_words = target
            row_words.extend(words)
            span[0], span[1] = min(span[0], bottom), max(span[1], top)
    return [row_words for _, row_words in rows]


def _row_text(words: list[_Word]) -> str:
    words = sorted(words, key=lambda w: w[1])
    heights = sorted(w[4] - w[2] for w in words)
    gap = CELL_GAP * (heights[len(heights) // 2] or 1.0)
    cells = [[words[0][0]]]
    for before, word in zip(words, words[1:]):
        # "$ 15,068": a currency sign set apart from its amount stays with it
        with_amount = cells[-1] == [cells[-1][0]] and cells[-1][0] in _CURRENCY and word[0][:1] in "0123456789(-"
        if word[1] - before[3] > gap and not with_amount:
            cells.append([word[0]])
        else:
            cells[-1].append(word[0])
    return " | ".join(" ".join(cell) for cell in cells)


def _layout_text(textpage: pdfium.PdfTextPage) -> str:
    """The page's text with table rows on one line, cells `` | ``-separated."""
    text = textpage.get_text_range()
    return "\n".join(_row_text(row) for row in _rows(_visual_lines(textpage, text)))


def _running_key(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip().lower())


def _drop_running_lines(pages: list[str]) -> list[str]:
    """Drop page headers/footers: a first or last line that (digits aside)
    repeats on at least half the pages, such as "Table of Contents" links or
    page numbers."""
    if len(pages) < 4:
        return pages
    edges: Counter[str] = Counter()
    for text in pages:
        lines = [ln for ln in text.split("\n") if ln.strip()]
        for key in {_running_key(ln) for ln in lines[:1] + lines[-1:]}:
            edges[key] += 1
    running = {k for k, n in edges.items() if n >= len(pages) / 2}
    if not running:
        return pages
    out = []
    for text in pages:
        lines = text.split("\n")
        non_blank = [i for i, ln in enumerate(lines) if ln.strip()]
        drop = {i for i in non_blank[:1] + non_blank[-1:] if _running_key(lines[i]) in running}
        out.append("\n".join(ln for i, ln in enumerate(lines) if i not in drop))
    return out


_PARA_END = re.compile(r"[.:!?。！？；:\"”)]$")


def _pdf_paragraphs(text: str) -> list[str]:
    """Recover paragraphs from a PDF page's lines: a line that ends a sentence
    and stops well short of the page's text width ends a paragraph. Lines keep
    their breaks; this only tells the chunker where paragraphs are."""
    found: list[str] = []
    for chunk in paragraphs(text):
        lines = [ln.rstrip() for ln in chunk.split("\n")]
        width = sorted(len(ln) for ln in lines)[int(len(lines) * 0.9)]
        current: list[str] = []
        for ln in lines:
            current.append(ln)
            if len(ln) < 0.75 * width and _PARA_END.search(ln):
                found.append("\n".join(current).strip())
                current = []
        if current:
            found.append("\n".join(current).strip())
    return [p for p in found if p]
