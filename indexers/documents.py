"""Files in, structured documents out.

``read_document`` turns one file into a :class:`Document`: an ordered tuple of
:class:`Block` (headings, paragraphs, lists, tables, code) with the page and
heading path each block sits under. The per-format readers live in
``pdf_blocks``, ``docx_blocks``, ``html_blocks`` and ``markdown_blocks``; plain
text and JSONL/CSV records are read here. Nothing here knows about models or
Milvus; chunking (``indexers.chunks``) works on these documents alone.

Bad files never crash a run: the readers raise :class:`ReadError` with a
machine-readable :data:`SkipReason`, and :func:`read_file` turns that into a
:class:`FileReadResult` carrying :class:`Skipped` entries.

:attr:`Document.text` is the blocks joined by :data:`BLOCK_SEPARATOR`, and
:meth:`Document.block_spans` gives each block's offsets in it; chunk offsets
index into that text.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from hybrid_search.errors import ConfigError, InputError

from .blocks import (
    TABLE_CELL_SEPARATOR,
    Block,
    BlockKind,
    ReadError,
    SkipReason,
    decode_text,
    text_blocks,
)
from .docx_blocks import docx_blocks
from .html_blocks import html_blocks
from .markdown_blocks import markdown_blocks
from .pdf_blocks import pdf_blocks

__all__ = [
    "BlockKind",
    "SkipReason",
    "DocumentFormat",
    "FORMAT_BY_SUFFIX",
    "RECORD_FORMATS",
    "BLOCK_SEPARATOR",
    "TABLE_CELL_SEPARATOR",
    "Block",
    "Document",
    "ReadOptions",
    "ReadError",
    "Skipped",
    "FileReadResult",
    "document_format",
    "source_for",
    "decode_text",
    "read_document",
    "read_documents",
    "read_file",
    "record_fields",
]

log = logging.getLogger(__name__)

DocumentFormat = Literal["pdf", "docx", "html", "markdown", "text", "jsonl", "csv"]
FORMAT_BY_SUFFIX: dict[str, DocumentFormat] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".jsonl": "jsonl",
    ".csv": "csv",
}
RECORD_FORMATS: tuple[DocumentFormat, ...] = ("jsonl", "csv")

BLOCK_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Document:
    """A parsed file (or one JSONL/CSV record).

    ``doc_id`` is stable across runs: the file's path relative to the ingest
    root (POSIX separators), or the record's id. ``source`` is the file's
    relative path for both.
    """

    doc_id: str
    source: str
    title: str
    blocks: tuple[Block, ...]
    format: DocumentFormat
    metadata: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def text(self) -> str:
        """The blocks' text joined by :data:`BLOCK_SEPARATOR`; chunk offsets index into this."""
        return BLOCK_SEPARATOR.join(b.text for b in self.blocks)

    def block_spans(self) -> list[tuple[int, int]]:
        """``(start, end)`` of each block in :attr:`text`: ``text[start:end] == block.text``."""
        spans: list[tuple[int, int]] = []
        pos = 0
        for b in self.blocks:
            spans.append((pos, pos + len(b.text)))
            pos += len(b.text) + len(BLOCK_SEPARATOR)
        return spans


@dataclass(frozen=True)
class ReadOptions:
    """How files are read.

    The record fields apply to JSONL and CSV only: each record becomes one
    document whose text is ``text_fields`` joined by blank lines, whose id is
    ``id_field`` (else ``<source>:<record number>``), whose title is
    ``title_field`` and whose metadata holds ``metadata_fields``.
    ``encoding`` forces a text encoding instead of detecting one.
    """

    max_file_bytes: int = 100 * 1024 * 1024
    encoding: str | None = None
    text_fields: tuple[str, ...] = ("text",)
    id_field: str | None = None
    title_field: str | None = None
    metadata_fields: tuple[str, ...] = ()
    csv_delimiter: str = ","
    html_bold_headings: bool = True

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0:
            raise ConfigError(f"ReadOptions.max_file_bytes must be > 0; got {self.max_file_bytes!r}")
        if isinstance(self.text_fields, str) or not self.text_fields:
            raise ConfigError("ReadOptions.text_fields must be a non-empty tuple of field names")
        if isinstance(self.metadata_fields, str):
            raise ConfigError("ReadOptions.metadata_fields must be a tuple of field names, not a string")
        if len(self.csv_delimiter) != 1:
            raise ConfigError(f"ReadOptions.csv_delimiter must be one character; got {self.csv_delimiter!r}")
        if self.encoding is not None:
            try:
                "".encode(self.encoding)
            except LookupError:
                raise ConfigError(f"ReadOptions.encoding {self.encoding!r} is not a known codec") from None


@dataclass(frozen=True)
class Skipped:
    """A file or record left out of the run, and why."""

    source: str
    reason: SkipReason
    detail: str

    @classmethod
    def from_error(cls, err: ReadError) -> Skipped:
        return cls(err.source, err.reason, err.detail)


@dataclass
class FileReadResult:
    """What reading one file gave: documents, and what was skipped (the whole
    file, or single bad records of a JSONL/CSV file)."""

    path: Path
    source: str
    documents: list[Document]
    skipped: list[Skipped]

    @property
    def ok(self) -> bool:
        return bool(self.documents)


# --------------------------------------------------------------------------- entry points


def document_format(path: str | Path) -> DocumentFormat | None:
    """The format a file is read as, from its suffix (case-insensitive)."""
    return FORMAT_BY_SUFFIX.get(Path(path).suffix.lower())


def source_for(path: str | Path, root: str | Path | None = None) -> str:
    """The stable, portable name of a file: its path relative to ``root`` with
    ``/`` separators and NFC-normalised (macOS hands out NFD names), or its file
    name when no root is given. Symlinks are not resolved, so a link inside the
    root keeps its own name."""
    p = Path(os.path.abspath(path))
    if root is None:
        rel = p.name
    else:
        r = Path(os.path.abspath(root))
        try:
            rel = p.relative_to(r).as_posix()
        except ValueError:
            raise InputError(f"{p} is not inside the ingest root {r}") from None
    return unicodedata.normalize("NFC", rel)


def read_document(path: str | Path, options: ReadOptions | None = None, *, root: str | Path | None = None) -> Document:
    """Read one single-document file (PDF, DOCX, HTML, Markdown, text).

    Raises :class:`ReadError` for a file that cannot be used. JSONL/CSV files
    hold many documents: use :func:`read_documents` for them.
    """
    fmt = document_format(path)
    if fmt in RECORD_FORMATS:
        raise InputError(f"{path} holds records ({fmt}); read it with read_documents()")
    docs, _ = _read(Path(path), options or ReadOptions(), root)
    return docs[0]


def read_documents(
    path: str | Path, options: ReadOptions | None = None, *, root: str | Path | None = None
) -> list[Document]:
    """Read any supported file into its documents (one, or one per record).

    Raises :class:`ReadError` when the whole file is unusable; single bad
    records are logged and left out (:func:`read_file` reports them).
    """
    docs, skipped = _read(Path(path), options or ReadOptions(), root)
    for s in skipped:
        log.warning("skipped %s: %s: %s", s.source, s.reason, s.detail)
    return docs


def record_fields(
    paths: Sequence[Path], id_field: str | None, text_field: str, title_field: str | None, metadata_fields: Sequence[str] | None
) -> tuple[str | None, tuple[str, ...]]:
    """Record id and metadata fields for JSONL: as given, else read off the
    first record of the first JSONL file (id: _id, id or doc_id; metadata: the
    other scalar fields). The same guess for ``hybrid-search index`` and the API."""
    if id_field is not None and metadata_fields:
        return id_field, tuple(metadata_fields)
    first: dict[str, Any] | None = None
    for path in paths:
        path = Path(path)
        corpus = path / "corpus.jsonl" if path.is_dir() and (path / "corpus.jsonl").is_file() else path
        if corpus.is_file() and corpus.suffix == ".jsonl":
            with corpus.open(encoding="utf-8-sig") as handle:
                line = next((line for line in handle if line.strip()), "")
            try:
                first = json.loads(line) if line else None
            except json.JSONDecodeError:
                first = None  # the reader reports the bad record itself
            break
    if not isinstance(first, dict):
        return id_field, tuple(metadata_fields or ())
    if id_field is None:
        id_field = next((f for f in ("_id", "id", "doc_id") if f in first), None)
    if not metadata_fields:
        reserved = {text_field, title_field, id_field}
        # "_" keys are hybrid-search's own bookkeeping: such fields are not picked up on their own.
        metadata_fields = [
            k for k, v in first.items() if k not in reserved and not k.startswith("_") and isinstance(v, (str, int, float, bool))
        ]
    return id_field, tuple(metadata_fields)


def read_file(
    path: str | Path, options: ReadOptions | None = None, *, root: str | Path | None = None
) -> FileReadResult:
    """Like :func:`read_documents`, but a bad file becomes a :class:`Skipped`
    entry instead of an exception, so one file never stops a folder run."""
    p = Path(path)
    source = source_for(p, root)
    try:
        docs, skipped = _read(p, options or ReadOptions(), root)
    except ReadError as err:
        return FileReadResult(p, source, [], [Skipped.from_error(err)])
    except Exception as exc:
        # A parser tripping over a file it should have rejected cleanly: still
        # one bad file, not a failed run. Logged with the traceback to fix it.
        log.warning("reading %s failed unexpectedly", source, exc_info=True)
        return FileReadResult(p, source, [], [Skipped(source, "corrupt", f"{type(exc).__name__}: {exc}")])
    return FileReadResult(p, source, docs, skipped)


def _read(path: Path, options: ReadOptions, root: str | Path | None) -> tuple[list[Document], list[Skipped]]:
    source = source_for(path, root)
    fmt = document_format(path)
    if fmt is None:
        raise ReadError(source, "unsupported", f"no reader for suffix {path.suffix!r}")
    data = _read_bytes(path, source, options.max_file_bytes)
    if fmt in RECORD_FORMATS:
        return _read_records(data, fmt, source, options)
    if fmt == "pdf":
        title, blocks = pdf_blocks(data, source)
    elif fmt == "docx":
        title, blocks = docx_blocks(data, source)
    elif fmt == "html":
        try:
            title, blocks = html_blocks(data, bold_headings=options.html_bold_headings, source=source)
        except ReadError:
            raise
        except Exception as exc:  # lxml is lenient; anything raised here is a truly broken file
            raise ReadError(source, "corrupt", f"HTML could not be parsed: {exc}") from exc
    elif fmt == "markdown":
        title, blocks = markdown_blocks(decode_text(data, options.encoding, source=source))
    else:
        title, blocks = None, text_blocks(decode_text(data, options.encoding, source=source))
    blocks = [b for b in blocks if b.text]
    if not blocks:
        raise ReadError(source, "no_text", "the file holds no extractable text")
    if all(b.kind == "heading" for b in blocks):
        # Headings open sections and hold no body: the file would give no chunks.
        raise ReadError(source, "no_text", "the file holds only headings, no body text")
    doc = Document(
        doc_id=source,
        source=source,
        title=title or Path(source).stem,
        blocks=tuple(blocks),
        format=fmt,
    )
    return [doc], []


def _read_bytes(path: Path, source: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ReadError(source, "too_large", f"{size} bytes is over the {max_bytes}-byte limit")
        if size == 0:
            raise ReadError(source, "empty", "zero bytes")
        return path.read_bytes()
    except ReadError:
        raise
    except OSError as exc:
        raise ReadError(source, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- JSONL / CSV records


def _read_records(
    data: bytes, fmt: DocumentFormat, source: str, options: ReadOptions
) -> tuple[list[Document], list[Skipped]]:
    text = decode_text(data, options.encoding, source=source)
    docs: list[Document] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for number, record in _iter_records(text, fmt, source, options, skipped):
        where = f"{source}:{number}"
        parts = [_field_text(record.get(f)) for f in options.text_fields]
        body = "\n\n".join(p for p in parts if p)
        if not body.strip():
            skipped.append(Skipped(where, "no_text", f"no text in field(s) {', '.join(options.text_fields)}"))
            continue
        if options.id_field:
            raw_id = record.get(options.id_field)
            if raw_id is None or str(raw_id).strip() == "":
                skipped.append(Skipped(where, "bad_record", f"id field {options.id_field!r} is missing"))
                continue
            doc_id = str(raw_id).strip()
        else:
            doc_id = where
        if doc_id in seen:
            skipped.append(Skipped(where, "duplicate_id", f"id {doc_id!r} already used in this file"))
            continue
        seen.add(doc_id)
        title = _field_text(record.get(options.title_field)) if options.title_field else ""
        metadata = {f: record[f] for f in options.metadata_fields if f in record}
        docs.append(
            Document(
                doc_id=doc_id,
                source=source,
                title=title.strip(),
                blocks=tuple(text_blocks(body)),
                format=fmt,
                metadata=metadata,
            )
        )
    if not docs:
        reasons = Counter(s.reason for s in skipped)
        detail = ", ".join(f"{n} {r}" for r, n in reasons.items()) or "no records"
        raise ReadError(source, "no_text", f"no usable records ({detail})")
    return docs, skipped


def _iter_records(
    text: str, fmt: DocumentFormat, source: str, options: ReadOptions, skipped: list[Skipped]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(record number, record) pairs; numbers are 1-based JSONL line numbers or CSV data-row numbers."""
    if fmt == "jsonl":
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                skipped.append(Skipped(f"{source}:{number}", "bad_record", f"invalid JSON: {exc.msg}"))
                continue
            if not isinstance(record, dict):
                skipped.append(Skipped(f"{source}:{number}", "bad_record", "a JSONL record must be an object"))
                continue
            yield number, record
        return
    reader = csv.DictReader(io.StringIO(text), delimiter=options.csv_delimiter)
    missing = [f for f in options.text_fields if f not in (reader.fieldnames or [])]
    if len(missing) == len(options.text_fields):
        raise ReadError(source, "bad_record", f"CSV header has none of the text field(s) {', '.join(missing)}")
    try:
        for number, row in enumerate(reader, start=1):
            yield number, row
    except csv.Error as exc:
        raise ReadError(source, "corrupt", f"CSV parse error near row {reader.line_num}: {exc}") from exc


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n\n".join(_field_text(v) for v in value if v is not None)
    return str(value)
