"""The vocabulary every reader shares: :class:`Block`, the heading path
tracker, the skip reasons and :class:`ReadError`, and bytes-to-text decoding.

Text conventions every reader follows, so the chunker can rely on them:

* block text is never empty, uses ``\\n`` line ends and has no blank lines or
  whitespace at either end (code may keep the indentation of its first line);
* a table block is one row per line, cells joined by :data:`TABLE_CELL_SEPARATOR`,
  and its first row is the header (repeated when a long table is split).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, get_args

from hybrid_search.errors import ConfigError, InputError

__all__ = [
    "BlockKind",
    "SkipReason",
    "TABLE_CELL_SEPARATOR",
    "Block",
    "HeadingTracker",
    "ReadError",
    "decode_text",
    "normalize_newlines",
    "paragraphs",
    "text_blocks",
    "plausible_title",
]

BlockKind = Literal["heading", "paragraph", "list", "table", "code"]
SkipReason = Literal[
    "empty",  # zero bytes, or nothing but whitespace
    "too_large",  # over ReadOptions.max_file_bytes
    "unsupported",  # no reader for this suffix
    "unreadable",  # the OS refused (permissions, vanished, a directory)
    "encrypted",  # password-protected PDF / Office file
    "corrupt",  # the parser could not make sense of it
    "binary",  # binary junk under a text suffix
    "undecodable",  # text whose encoding could not be determined
    "no_text",  # parsed fine but holds no text (scanned PDF, empty record)
    "bad_record",  # a JSONL/CSV record that is not usable
    "duplicate_id",  # a record id already seen in the same file
    "symlink_loop",  # a symlinked folder that leads back into a folder already walked
]

TABLE_CELL_SEPARATOR = " | "


@dataclass(frozen=True)
class Block:
    """One structural unit of a document.

    ``heading_path`` is the chain of headings the block sits under; for a
    heading block it ends with the heading itself. ``level`` is the heading
    level (1 = top) for headings and 0 for everything else. ``page`` is 1-based
    where the format has pages (PDF) and None elsewhere.
    """

    kind: BlockKind
    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    level: int = 0

    def __post_init__(self) -> None:
        if self.kind not in get_args(BlockKind):
            raise ConfigError(f"Block.kind must be one of {get_args(BlockKind)}; got {self.kind!r}")


class HeadingTracker:
    """Keeps the heading path as headings of various levels go by."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(t for _, t in self._stack)

    def heading(self, text: str, level: int, page: int | None = None) -> Block:
        text = " ".join(text.split())  # "A.\tPURPOSE" and wrapped headings read as one line
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        return Block("heading", text, page=page, heading_path=self.path, level=level)


class ReadError(InputError):
    """A file (or record) cannot be read; ``reason`` says why in one word."""

    def __init__(self, source: str, reason: SkipReason, detail: str) -> None:
        super().__init__(f"{source}: {reason}: {detail}")
        self.source = source
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------- text


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Decode with the superset codec: files labelled GBK/GB2312 routinely hold
# GB18030-only characters, and Big5 files from Windows are really cp950.
_SUPERSET_CODEC = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "cp950"}
_ALLOWED_CONTROLS = set("\t\n\r\f\v")
# Encodings documents are really written in (charset-normalizer's names): a
# guess outside these is taken as "not text in any encoding we trust".
_DOCUMENT_CODECS = {
    "ascii", "utf_8", "gb18030", "gbk", "gb2312", "big5", "big5hkscs", "cp950", "shift_jis", "shift_jis_2004",
    "cp932", "euc_jp", "euc_kr", "cp949", "iso2022_jp", "latin_1", "iso8859_15", "iso8859_2", "iso8859_5", "iso8859_7",
    "iso8859_9", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "koi8_r",
    "koi8_u", "cp874", "tis_620", "mac_roman",
}


def decode_text(data: bytes, encoding: str | None = None, *, source: str = "<bytes>") -> str:
    """Bytes to text: a BOM wins, then ``encoding`` if given, then strict UTF-8,
    then charset-normalizer's guess (which tells GB18030/GBK from Big5 well).
    NUL bytes or a run of control characters mean binary junk, not text."""
    if not data.strip():
        raise ReadError(source, "empty", "no text")
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return normalize_newlines(data.decode(codec))
            except UnicodeDecodeError as exc:
                raise ReadError(source, "undecodable", f"starts with a {codec} BOM but is not {codec}") from exc
    if b"\x00" in data:
        raise ReadError(source, "binary", "contains NUL bytes")
    if encoding:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ReadError(source, "undecodable", f"not valid {encoding}: {exc.reason}") from exc
    else:
        text = _detect_and_decode(data, source)
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS)
    if controls > max(2, len(text) // 200):
        raise ReadError(source, "binary", f"{controls} control characters in {len(text)}; not text")
    return normalize_newlines(text)


def _detect_and_decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ReadError(source, "binary", "no text encoding fits these bytes")
    if best.encoding.lower().replace("-", "_") not in _DOCUMENT_CODECS:
        # A guess such as cp1006 or BOM-less UTF-16 for a few stray bytes in
        # ASCII text is invalid UTF-8, not a document in that code page:
        # indexing it would store garbled text.
        raise ReadError(
            source, "undecodable", f"not valid UTF-8, and no common text encoding fits (the closest guess, {best.encoding}, is not one)"
        )
    detected = best.encoding.lower().replace("_", "-")
    for codec in (_SUPERSET_CODEC.get(detected.replace("-", "")), detected):
        if codec:
            try:
                return data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
    return str(best)


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


_BLANK_LINES = re.compile(r"\n[ \t\f\v\u3000\xa0]*\n\s*")


def paragraphs(text: str) -> list[str]:
    """Split on blank lines; keep single line breaks (they may be meaningful)."""
    return [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]


def text_blocks(text: str, page: int | None = None) -> list[Block]:
    return [Block("paragraph", p, page=page) for p in paragraphs(text)]


def plausible_title(title: str) -> str | None:
    """``title`` unless it is what producers put there by default: accession
    numbers, file names, "untitled"."""
    title = " ".join(title.split())
    if not any(ch.isalpha() for ch in title) or re.search(r"\.(docx?|pdf|pptx?|xlsx?|html?|txt)$", title, re.I):
        return None
    if title.lower() in {"untitled", "title", "document"}:
        return None
    return re.sub(r"^Microsoft (Word|PowerPoint) - ", "", title)
