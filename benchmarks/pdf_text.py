"""PDF text extraction: PDFium's plain text vs the layout-aware rows that
``indexers.pdf_blocks`` reads (``PDF_EXTRACTOR``), timed in one process, runs
interleaved so that machine load hits both alike; the two must hold the same
words (the layout only reorders lines and adds `` | `` between cells)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from indexers.pdf_blocks import PDF_EXTRACTOR, _layout_text

from .report import command_line, environment, fmt, markdown_table, write_json, write_text

__all__ = ["pdf_text_markdown", "run_pdf_text"]


def _extract(data: bytes, page_text: Callable[[Any], str]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    pdf = pdfium.PdfDocument(data)
    pages = []
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            pages.append(page_text(textpage))
            textpage.close()
            page.close()
    finally:
        pdf.close()
    return time.perf_counter() - start, pages


def run_pdf_text(path: Path, *, repeats: int, out_dir: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no PDF at {str(path)!r}")
    data = path.read_bytes()
    seconds: dict[str, list[float]] = {"plain": [], "layout": []}
    pages: dict[str, list[str]] = {}
    for _ in range(repeats):
        for name, page_text in (("plain", lambda tp: tp.get_text_range()), ("layout", _layout_text)):
            elapsed, pages[name] = _extract(data, page_text)
            seconds[name].append(elapsed)
    differing = [
        n for n, (plain, layout) in enumerate(zip(pages["plain"], pages["layout"]), start=1)
        if Counter(plain.split()) != Counter(w for w in layout.split() if w != "|")
    ]
    best = {name: min(values) for name, values in seconds.items()}
    result = {
        "command": command_line(),
        "environment": environment(),
        "pdf": path.name,
        "pages": len(pages["plain"]),
        "repeats": repeats,
        "extractor": PDF_EXTRACTOR,
        "seconds": seconds,
        "best_seconds": best,
        "layout_over_plain": best["layout"] / best["plain"],
        "pages_with_different_words": differing,
        "lines_with_cells": sum(line.count(" | ") > 0 for page in pages["layout"] for line in page.split("\n")),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"pdf-text-{path.stem}"
    write_json(out_dir / f"{stem}.json", result)
    write_text(out_dir / f"{stem}.md", pdf_text_markdown(result))
    return result


def pdf_text_markdown(result: dict[str, Any]) -> str:
    rows = [
        ["PDFium plain text (before)", fmt(result["best_seconds"]["plain"], 2), ", ".join(fmt(s, 2) for s in result["seconds"]["plain"])],
        [f"layout rows ({result['extractor']})", fmt(result["best_seconds"]["layout"], 2), ", ".join(fmt(s, 2) for s in result["seconds"]["layout"])],
    ]
    return "\n".join(
        [
            f"# PDF text: {result['pdf']} ({result['pages']} pages)",
            "",
            markdown_table(["extraction", "best s", "every run (s)"], rows),
            "",
            f"layout / plain: {result['layout_over_plain']:.2f}x; lines with cells: {result['lines_with_cells']}; "
            f"pages whose words differ: {len(result['pages_with_different_words'])}",
            "",
            f"`{result['command']}`",
            "",
        ]
    )
