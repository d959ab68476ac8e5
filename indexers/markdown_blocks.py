"""Markdown in, blocks out, parsed by markdown-it-py (CommonMark + GFM tables)."""

from __future__ import annotations

import re
from typing import Any

from markdown_it import MarkdownIt

from .blocks import TABLE_CELL_SEPARATOR, Block, HeadingTracker

__all__ = ["markdown_blocks"]

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.M)


def markdown_blocks(text: str) -> tuple[str | None, list[Block]]:
    """Title (front matter ``title:``, else the first h1) and blocks: ATX and
    setext headings, paragraphs, lists and fenced/indented code as their
    source lines (so code stays verbatim), GFM tables as rows."""
    title = None
    fm = _FRONT_MATTER.match(text)
    if fm:
        # YAML front matter would otherwise parse as a rule and a setext heading.
        m = _FRONT_TITLE.search(fm.group(1))
        title = m.group(1).strip("'\"") if m else None
        text = "\n" * fm.group(0).count("\n") + text[fm.end() :]  # keep line numbers
    lines = text.split("\n")
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    tracker = HeadingTracker()
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.level != 0 or tok.map is None:
            i += 1
            continue
        raw = "\n".join(lines[tok.map[0] : tok.map[1]]).strip("\n").rstrip()
        if tok.type != "code_block":  # an indented code block keeps its first indent
            raw = raw.strip()
        if tok.type == "heading_open":
            heading = tokens[i + 1].content.strip()
            if heading:
                level = int(tok.tag[1])
                if title is None and level == 1:
                    title = heading
                blocks.append(tracker.heading(heading, level))
        elif tok.type == "table_open":
            rows = _markdown_table_rows(tokens[i : _closing(tokens, i)])
            if rows:
                blocks.append(Block("table", "\n".join(rows), heading_path=tracker.path))
        elif tok.type in ("fence", "code_block"):
            blocks.append(Block("code", raw, heading_path=tracker.path))
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            blocks.append(Block("list", raw, heading_path=tracker.path))
        elif tok.type in ("paragraph_open", "blockquote_open", "html_block"):
            blocks.append(Block("paragraph", raw, heading_path=tracker.path))
        # hr and closers carry no text
        if tok.nesting == 1:
            i = _closing(tokens, i)
        i += 1
    return title, blocks


def _closing(tokens: list[Any], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _markdown_table_rows(tokens: list[Any]) -> list[str]:
    rows: list[str] = []
    cells: list[str] = []
    for tok in tokens:
        if tok.type == "tr_open":
            cells = []
        elif tok.type == "inline":
            cells.append(" ".join(tok.content.split()))
        elif tok.type == "tr_close" and any(cells):
            rows.append(TABLE_CELL_SEPARATOR.join(cells))
    return rows
