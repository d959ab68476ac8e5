"""Documents in, chunks out: structure-aware packing within a token budget.

Rules, in order of precedence:

* A chunk never crosses a heading of level <= ``section_level``: each section
  (the blocks between two such headings) is chunked on its own.
* Within a section, whole blocks (paragraphs, lists, code, tables) are packed
  while they fit ``max_tokens``; a block that does not fit the current chunk
  starts the next one rather than being cut, if it fits a chunk by itself.
* A block larger than a chunk is cut at sentence ends (English ``.!?`` before
  whitespace, Chinese ``。！？；``, and line breaks); a single sentence still
  too long is cut at the last whitespace (or character, for CJK) that fits.
* A table larger than a chunk is cut between rows, and every piece after the
  first starts with the header row again.
* Consecutive chunks of one section share up to ``overlap_tokens`` of whole
  sentences (never table rows).

Offsets: ``char_start``/``char_end`` index into :attr:`Document.text` (blocks
joined by blank lines), and ``chunk.text == doc.text[char_start:char_end]``,
except a table continuation, whose text is the header row, a newline, then
that slice.

Tokens are counted by the injected ``count_tokens`` (the encoder's own
tokenizer, see :func:`hf_token_counter`). Candidates are sized by summing
their sentences' counts, and a piece that comes near the budget is counted
whole before it is emitted, so ``max_tokens`` holds for tokenizers whose counts
add up across whitespace (WordPiece, SentencePiece) and for those that spend at
most a token per boundary (byte-level BPE). With ``prepend_headings`` the
prefix's tokens come out of the budget too (down to half of it), so the
``embed_text`` the encoder sees fits as well.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hybrid_search.errors import ConfigError
from hybrid_search.types import Chunk

from .documents import Block, Document

__all__ = [
    "TokenCounter",
    "ChunkingConfig",
    "chunk_document",
    "sentence_spans",
    "embed_prefix",
    "whitespace_token_counter",
    "hf_token_counter",
]

TokenCounter = Callable[[str], int]

# No piece is longer than this many characters, whatever the token count says:
# a tokenizer may count a long unbroken word as one token ([UNK]), and the store
# holds at most 65,535 bytes of text per chunk (4 bytes per character at most).
MAX_PIECE_CHARS = 16_000


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut into chunks (see the module docstring for the rules).

    ``section_level``: headings of this level or above (1 = top) end a chunk;
    deeper headings stay inline as text. ``embed_text`` is
    ``"<title> / <h1> > <h2>\\n\\n<text>"`` when ``prepend_headings`` is set.
    """

    max_tokens: int = 256
    overlap_tokens: int | None = None  # None: an eighth of max_tokens (32 of 256)
    section_level: int = 6
    prepend_headings: bool = True
    heading_separator: str = " > "
    title_separator: str = " / "

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ConfigError(f"ChunkingConfig.max_tokens must be >= 8; got {self.max_tokens!r}")
        overlap = self.max_tokens // 8 if self.overlap_tokens is None else self.overlap_tokens
        object.__setattr__(self, "overlap_tokens", overlap)
        if not 0 <= overlap <= self.max_tokens // 2:
            raise ConfigError(
                f"ChunkingConfig.overlap_tokens must be between 0 and max_tokens // 2 "
                f"({self.max_tokens // 2}); got {overlap!r}"
            )
        if not 1 <= self.section_level <= 6:
            raise ConfigError(f"ChunkingConfig.section_level must be 1..6; got {self.section_level!r}")


# Where a sentence may end: Chinese terminators (no space follows them),
# English terminators followed by whitespace, and any line break. Closing
# quotes/brackets stay with the sentence they close.
_SENTENCE_END = re.compile(r"[。！？；]+[”’」』）】》\"')\]]*|[.!?]+[\"'”’)\]]*(?=\s)|\n")
# One "token" per CJK character, since those scripts put no spaces between words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD_OR_CJK = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence/line of ``text``, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        _add_trimmed(text, pos, m.end(), spans)
        pos = m.end()
    _add_trimmed(text, pos, len(text), spans)
    return spans


def _add_trimmed(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        out.append((start, end))


def whitespace_token_counter(text: str) -> int:
    """A tokenizer-free stand-in: whitespace-separated words, each CJK
    character counted as one. For tests and for when no encoder is at hand."""
    return len(_WORD_OR_CJK.findall(text))


class _FastTokenCounter:
    """Counts with a Rust ``tokenizers.Tokenizer``; ``many`` counts a batch in
    parallel, which :func:`chunk_document` uses for all sentences up front."""

    def __init__(self, backend: Any) -> None:
        from tokenizers import Tokenizer

        # A copy with padding and truncation off: tokenizer.json files often
        # switch them on (all-MiniLM-L6-v2 pads every text to 128 tokens).
        self._tok = Tokenizer.from_str(backend.to_str())
        self._tok.no_padding()
        self._tok.no_truncation()

    def __call__(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def many(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]


def hf_token_counter(tokenizer: Any) -> TokenCounter:
    """Count tokens with a Hugging Face tokenizer, special tokens excluded.

    A fast tokenizer is used through its Rust backend directly (no per-call
    Python overhead, no warnings about texts longer than the model takes)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return _FastTokenCounter(backend)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return count


def embed_prefix(title: str, heading_path: Iterable[str], config: ChunkingConfig) -> str:
    """``"title / h1 > h2"``; the title is left out when the top heading repeats it."""
    path = [h for h in heading_path if h]
    if title and path and path[0].casefold() == title.casefold():
        title = ""
    return config.title_separator.join(p for p in (title, config.heading_separator.join(path)) if p)


@dataclass(frozen=True)
class _Atom:
    """The smallest unit packed: a sentence, a line, a table row or a whole table."""

    start: int
    end: int
    page: int | None
    table: bool = False


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    page: int | None
    prefix: str = ""  # the repeated header row of a table continuation


def chunk_document(doc: Document, config: ChunkingConfig, count_tokens: TokenCounter) -> list[Chunk]:
    """Cut ``doc`` into chunks, numbered 0..n-1 in document order. Pure and
    deterministic: the same document and config always give the same chunks."""
    chunks: list[Chunk] = []
    sections = _sections(doc, config.section_level)
    tokens = _count_atoms_up_front(doc.text, sections, count_tokens)
    for path, blocks in sections:
        prefix = embed_prefix(doc.title, path, config) if config.prepend_headings else ""
        budget = config.max_tokens
        if prefix:
            budget = max(config.max_tokens - count_tokens(prefix + "\n\n"), config.max_tokens // 2)
        packer = _Packer(doc.text, count_tokens, budget, config.overlap_tokens or 0, tokens)
        for piece in packer.pack(blocks):
            text = piece.prefix + doc.text[piece.start : piece.end]
            chunks.append(
                Chunk(
                    doc_id=doc.doc_id,
                    chunk_index=len(chunks),
                    text=text,
                    title=doc.title,
                    source=doc.source,
                    page=piece.page,
                    heading_path=path,
                    char_start=piece.start,
                    char_end=piece.end,
                    metadata=dict(doc.metadata),
                    embed_text=f"{prefix}\n\n{text}" if prefix else None,
                )
            )
    return chunks


def _sections(doc: Document, section_level: int) -> list[tuple[tuple[str, ...], list[tuple[Block, int, int]]]]:
    """Runs of (block, start, end) between headings of level <= section_level,
    each with the heading path it sits under (cut to section_level)."""
    sections: list[tuple[tuple[str, ...], list[tuple[Block, int, int]]]] = []
    current: list[tuple[Block, int, int]] = []
    path: tuple[str, ...] = ()
    for block, (start, end) in zip(doc.blocks, doc.block_spans(), strict=True):
        if block.kind == "heading" and block.level <= section_level:
            if current:
                sections.append((path, current))
            current, path = [], block.heading_path[:section_level]
            continue
        if not current:
            path = block.heading_path[:section_level]
        current.append((block, start, end))
    if current:
        sections.append((path, current))
    return sections


def _count_atoms_up_front(
    text: str, sections: list[tuple[tuple[str, ...], list[tuple[Block, int, int]]]], count: TokenCounter
) -> dict[tuple[int, int], int]:
    """Token counts of every sentence and table, in one batch, when the
    counter can batch (``count.many``); else they are counted as needed."""
    many = getattr(count, "many", None)
    if many is None:
        return {}
    spans = [
        (start, end) if block.kind == "table" else (start + s, start + e)
        for _, blocks in sections
        for block, start, end in blocks
        for s, e in ([(0, end - start)] if block.kind == "table" else sentence_spans(block.text))
    ]
    return dict(zip(spans, many([text[s:e] for s, e in spans]), strict=True))


class _Packer:
    """Greedy packing of one section's blocks into pieces within ``budget``.

    Each atom is counted once and a candidate chunk is judged by the sum of
    its atoms' counts; a piece whose sum comes within one token per atom
    boundary of the budget is counted again, whole, before it is emitted, and
    cut further if it is over. Counting the whole candidate at every step
    instead cost 8-10 s per long document with a real tokenizer.
    """

    def __init__(
        self, text: str, count: TokenCounter, budget: int, overlap: int, tokens: dict[tuple[int, int], int]
    ) -> None:
        self.text = text
        self.count = count
        self.budget = budget
        self.overlap = overlap
        self.out: list[_Piece] = []
        self.cur: list[_Atom] = []
        self.last: list[_Atom] = []  # atoms of the previous piece, for overlap
        self._tokens = tokens  # (start, end) -> token count, shared across sections

    def pack(self, blocks: list[tuple[Block, int, int]]) -> list[_Piece]:
        for block, start, end in blocks:
            if block.kind == "table":
                whole = _Atom(start, end, block.page, table=True)
                if self._within([whole]):
                    self._add_group([whole])
                else:
                    self._emit()
                    self._split_table(block, start)
                continue
            atoms = [_Atom(start + s, start + e, block.page) for s, e in sentence_spans(block.text)]
            if atoms and self._within(atoms):
                self._add_group(atoms)
                continue
            for atom in atoms:  # a block bigger than a chunk: sentence by sentence
                for part in self._fit(atom, self.budget):
                    self._add_group([part])
        self._emit()
        return self.out

    def _atom_tokens(self, atom: _Atom) -> int:
        key = (atom.start, atom.end)
        if key not in self._tokens:
            self._tokens[key] = self.count(self.text[atom.start : atom.end])
        return self._tokens[key]

    def _est(self, atoms: list[_Atom], extra: int = 0) -> int:
        return extra + sum(self._atom_tokens(a) for a in atoms)

    def _within(self, atoms: list[_Atom], extra: int = 0) -> bool:
        """Fits by the token estimate and by MAX_PIECE_CHARS."""
        return atoms[-1].end - atoms[0].start <= MAX_PIECE_CHARS and self._est(atoms, extra) <= self.budget

    def _exact(self, atoms: list[_Atom], prefix: str = "") -> int:
        return self.count(prefix + self.text[atoms[0].start : atoms[-1].end])

    def _add_group(self, atoms: list[_Atom]) -> None:
        """Append atoms that fit a chunk on their own: to the current chunk if
        there is room, else to a new one that opens with the overlap."""
        if self.cur and self._within(self.cur + atoms):
            self.cur.extend(atoms)
            return
        self._emit()
        tail = self._overlap_tail()
        while tail and not self._within(tail + atoms):
            tail.pop(0)
        self.cur = tail + atoms

    def _emit(self) -> None:
        if self.cur:
            self.last = self._emit_checked(self.cur)
            self.cur = []

    def _emit_checked(self, atoms: list[_Atom], prefix: str = "") -> list[_Atom]:
        """Emit ``atoms`` as one piece, or (if the exact count is over budget)
        as several, each the longest run that fits; returns the last run."""
        while True:
            # Counts add up across whitespace for WordPiece/SentencePiece, and a
            # byte-level BPE spends at most a token per boundary: only a sum
            # that close to the budget needs the exact (costly) count.
            headroom = self.budget - self._est(atoms, self.count(prefix) if prefix else 0)
            if len(atoms) == 1 or headroom >= len(atoms) - 1 or self._exact(atoms, prefix) <= self.budget:
                self.out.append(_Piece(atoms[0].start, atoms[-1].end, atoms[0].page, prefix))
                return atoms
            lo, hi = 1, len(atoms) - 1  # the longest prefix run that fits
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._exact(atoms[:mid], prefix) <= self.budget:
                    lo = mid
                else:
                    hi = mid - 1
            self.out.append(_Piece(atoms[0].start, atoms[lo - 1].end, atoms[0].page, prefix))
            atoms = atoms[lo:]

    def _overlap_tail(self) -> list[_Atom]:
        """The longest run of whole sentences ending the previous chunk that fits
        ``overlap`` tokens, never the whole chunk (that would not move forward)."""
        tail: list[_Atom] = []
        if self.overlap <= 0:
            return tail
        for atom in reversed(self.last[1:]):
            if atom.table or self._est([atom, *tail]) > self.overlap:
                break
            tail.insert(0, atom)
        return tail

    def _longest_fit(self, start: int, end: int, budget: int, prefix: str) -> int:
        """The end of the longest text from ``start`` (at most MAX_PIECE_CHARS,
        at least one character) that fits ``budget`` with ``prefix``.

        A window doubling from a few characters per token brackets the answer,
        then interpolation on the token counts (alternating with bisection, so
        it always converges) finds it. Each count covers about one part, so a
        long unbroken text is cut in time linear in its length; counting the
        whole remainder at every cut (as before) was quadratic."""
        limit = min(end, start + MAX_PIECE_CHARS)
        lo, lo_tokens = start, 0  # text[start:lo] fits
        width = max(64, 2 * budget)
        while True:
            hi = min(limit, start + width)
            hi_tokens = self.count(prefix + self.text[start:hi])
            if hi_tokens > budget:
                break
            lo, lo_tokens = hi, hi_tokens
            if hi == limit:
                return limit
            width *= 2
        bisect = False
        while hi - lo > 1:  # text[start:lo] fits, text[start:hi] does not
            if bisect:
                mid = (lo + hi) // 2
            else:
                mid = lo + int((hi - lo) * (budget + 0.5 - lo_tokens) / (hi_tokens - lo_tokens))
                mid = min(max(mid, lo + 1), hi - 1)
            tokens = self.count(prefix + self.text[start:mid])
            if tokens <= budget:
                lo, lo_tokens = mid, tokens
            else:
                hi, hi_tokens = mid, tokens
            bisect = not bisect
        return max(lo, start + 1)

    def _fit(self, atom: _Atom, budget: int, prefix: str = "") -> list[_Atom]:
        """``atom`` cut into parts that each fit ``budget`` (with ``prefix``)
        and MAX_PIECE_CHARS: at the last whitespace that fits, else at the last
        character (CJK)."""
        if atom.end - atom.start <= MAX_PIECE_CHARS and self._atom_tokens(atom) + (self.count(prefix) if prefix else 0) <= budget:
            return [atom]
        parts: list[_Atom] = []
        start, end = atom.start, atom.end
        while start < end:
            cut = self._longest_fit(start, end, budget, prefix)
            if cut == end:
                parts.append(_Atom(start, end, atom.page, atom.table))
                break
            space = max(self.text.rfind(" ", start, cut + 1), self.text.rfind("\n", start, cut + 1))
            if space > start + (cut - start) // 2:  # do not split a word unless it is huge
                cut = space
            stop = cut
            while stop > start + 1 and self.text[stop - 1].isspace():
                stop -= 1
            parts.append(_Atom(start, stop, atom.page, atom.table))
            start = cut
            while start < end and self.text[start].isspace():
                start += 1
        return parts

    def _split_table(self, block: Block, start: int) -> None:
        """Rows packed into pieces; later pieces repeat the header row (unless
        the header would eat more than half the budget)."""
        rows: list[_Atom] = []
        pos = start
        for line in block.text.split("\n"):
            if line.strip():
                rows.append(_Atom(pos, pos + len(line), block.page, table=True))
            pos += len(line) + 1
        header = self.text[rows[0].start : rows[0].end] + "\n"
        header_tokens = self.count(header)
        repeat = header if header_tokens <= self.budget // 2 else ""

        cur: list[_Atom] = []
        prefix = ""  # the first piece holds the header row itself
        for row in rows:
            for part in self._fit(row, self.budget, repeat):
                extra = header_tokens if prefix else 0
                if not cur or self._within([*cur, part], extra):
                    cur.append(part)
                    continue
                self._emit_checked(cur, prefix)
                cur, prefix = [part], repeat
        if cur:
            self._emit_checked(cur, prefix)
        self.last = []  # no overlap out of a table
