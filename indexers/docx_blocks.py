"""DOCX in, blocks out, with python-docx: paragraphs, headings and tables in
body order."""

from __future__ import annotations

import io
import re
from typing import Any

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from .blocks import TABLE_CELL_SEPARATOR, Block, HeadingTracker, ReadError, plausible_title

__all__ = ["docx_blocks"]

_HEADING_STYLE = re.compile(r"heading\s*(\d)$", re.I)


def docx_blocks(data: bytes, source: str) -> tuple[str | None, list[Block]]:
    """Title (core properties, else a Title-style paragraph) and blocks in body
    order: Heading N / outline-level paragraphs as headings, list paragraphs,
    tables as rows. Table-of-contents lines are left out (they repeat the
    headings). DOCX has no fixed pages, so ``page`` is None."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        # An OLE container under .docx: a password-protected Office file (or a
        # renamed legacy .doc); either way python-docx cannot read it.
        raise ReadError(source, "encrypted", "OLE container, not OOXML: password-protected or legacy .doc")
    try:
        document = docx.Document(io.BytesIO(data))
    except PackageNotFoundError as exc:
        raise ReadError(source, "corrupt", "not a DOCX package (not a zip, or no document part)") from exc
    except Exception as exc:  # zipfile/lxml/python-docx raise a zoo of types on damaged packages
        raise ReadError(source, "corrupt", f"DOCX could not be opened: {type(exc).__name__}: {exc}") from exc

    title = plausible_title(document.core_properties.title or "")
    styles = _DocxStyles(document)
    builder = HeadingTracker()
    blocks: list[Block] = []
    for item in _docx_body_items(document):
        if isinstance(item, str):  # a table, already rendered
            blocks.append(Block("table", item, heading_path=builder.path))
            continue
        text = item.text.strip()
        if not text:
            continue
        style_id, ppr = styles.paragraph_style(item._p)
        style = styles.name(style_id).lower()
        if style.startswith("toc"):
            continue  # table-of-contents lines duplicate the headings
        if style == "title" and title is None:
            title = text
            continue
        level = styles.heading_level(style_id, ppr)
        if level is not None:
            blocks.append(builder.heading(text, level))
        elif (ppr is not None and ppr.find(qn("w:numPr")) is not None) or "list" in style:
            blocks.append(Block("list", text, heading_path=builder.path))
        else:
            blocks.append(Block("paragraph", text, heading_path=builder.path))
    return title, blocks


class _DocxStyles:
    """Paragraph styles read once from styles.xml. python-docx's
    ``paragraph.style`` re-scans every style per call (40 s on an 8,000-paragraph
    handbook); this index makes it a dict lookup."""

    def __init__(self, document: Any) -> None:
        self._styles: dict[str, tuple[str, str | None, int | None]] = {}
        self._default: str | None = None
        self._levels: dict[str | None, int | None] = {}
        for el in document.styles.element.findall(qn("w:style")):
            if el.get(qn("w:type")) != "paragraph":
                continue
            sid = el.get(qn("w:styleId")) or ""
            name_el, based_el = el.find(qn("w:name")), el.find(qn("w:basedOn"))
            name = name_el.get(qn("w:val")) if name_el is not None else sid
            base = based_el.get(qn("w:val")) if based_el is not None else None
            self._styles[sid] = (name or sid, base, _outline_level(el.find(qn("w:pPr"))))
            if el.get(qn("w:default")) in ("1", "true", "on"):
                self._default = sid

    def paragraph_style(self, p: Any) -> tuple[str | None, Any]:
        ppr = p.find(qn("w:pPr"))
        ps = ppr.find(qn("w:pStyle")) if ppr is not None else None
        return (ps.get(qn("w:val")) if ps is not None else self._default), ppr

    def name(self, style_id: str | None) -> str:
        entry = self._styles.get(style_id or "")
        return entry[0] if entry else ""

    def heading_level(self, style_id: str | None, ppr: Any) -> int | None:
        """Heading N style (or a style based on one), else an outline level set
        on the paragraph or its style chain (python-docx's style names are the
        English built-in ones even in a Chinese Word, so this holds there too)."""
        direct = _outline_level(ppr)
        if direct is not None:
            return direct
        if style_id not in self._levels:
            level, sid, seen = None, style_id, set()
            while sid and sid in self._styles and sid not in seen:
                seen.add(sid)
                name, base, outline = self._styles[sid]
                m = _HEADING_STYLE.match(name)
                if m or outline is not None:
                    level = max(1, int(m.group(1))) if m else outline
                    break
                sid = base
            self._levels[style_id] = level
        return self._levels[style_id]


def _outline_level(ppr: Any) -> int | None:
    # w:outlineLvl 0 is level 1; 9 means body text.
    lvl = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
    if lvl is None:
        return None
    try:
        val = int(lvl.get(qn("w:val"), "9"))
    except ValueError:
        return None
    return val + 1 if val < 9 else None


def _docx_body_items(document: Any) -> list[Any]:
    """Paragraphs and rendered tables (as str) in body order, including those
    inside content controls (w:sdt), except a table-of-contents control."""
    items: list[Any] = []

    def visit(parent_el: Any) -> None:
        for el in parent_el.iterchildren():
            if el.tag == qn("w:p"):
                items.append(Paragraph(el, document._body))
            elif el.tag == qn("w:tbl"):
                text = _docx_table_text(Table(el, document._body))
                if text:
                    items.append(text)
            elif el.tag == qn("w:sdt"):
                gallery = el.find(f"{qn('w:sdtPr')}/{qn('w:docPartObj')}/{qn('w:docPartGallery')}")
                if gallery is not None and "contents" in (gallery.get(qn("w:val")) or "").lower():
                    continue
                content = el.find(qn("w:sdtContent"))
                if content is not None:
                    visit(content)

    visit(document.element.body)
    return items


def _docx_table_text(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is returned once per grid column it spans
                continue
            seen.add(id(cell._tc))
            # Every paragraph under the cell, so a nested table's text is kept too.
            paragraphs = (Paragraph(p, cell).text for p in cell._tc.iter(qn("w:p")))
            cells.append(" ".join(" ".join(paragraphs).split()))
        if any(cells):
            rows.append(TABLE_CELL_SEPARATOR.join(cells))
    return "\n".join(rows)
