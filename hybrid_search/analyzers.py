"""Text analysis for BM25: text in, terms out.

Terms are produced here, on the client, and stored space-joined in a field that
Milvus's BM25 function reads with its ``whitespace`` tokenizer. That keeps Milvus
(Lite or server, any version), query highlighting and the rank-bm25 reference
on exactly the same terms, and lets Chinese users bring a jieba user dictionary
(which Milvus Lite 2.5's built-in jieba tokenizer rejects).

Apostrophes (analyzer version 2, ``AnalyzerConfig.version``). A clitic is never
a term of its own, so "NVIDIA's" no longer yields the term "s" that BM25 would
count and the page would highlight in "U.S.":

- possessive ``'s`` is dropped: "NVIDIA's" -> nvidia (span "NVIDIA"); a plural
  possessive ("companies'") ends at the letters anyway;
- the pronoun/auxiliary clitics ``'ll 're 've 'd 'm`` are dropped: "we'll" ->
  we, "they're" -> they, "I'm" -> i (then stopwords and stemming apply);
- any other apostrophe inside a word joins it, without the apostrophe:
  "don't" -> dont, "can't" -> cant, "O'Brien" -> obrien, so a query typed
  without the apostrophe matches too.

Straight, typographic (U+2019) and modifier-letter (U+02BC) apostrophes count
alike. In ``zh`` mode jieba tokenizes and splits at apostrophes; a clitic
fragment (these, or the t of n't) right after an apostrophe inside a word is
dropped there ("don't" -> don). Version 1 (collections built
before) split at every apostrophe; such a collection keeps using it.
"""

from __future__ import annotations

import itertools
import operator
import re
import unicodedata
from collections.abc import Callable, Iterator
from functools import cached_property, lru_cache
from pathlib import Path

from .config import AnalyzerConfig
from .errors import ConfigError

__all__ = ["CLITICS", "ENGLISH_STOPWORDS", "Analyzer", "SurfaceMatcher", "blank_non_word_table", "runs_to_words"]

# Lucene's EnglishAnalyzer default stop set: short on purpose, so that queries
# like "to be or not to be" keep most of their terms.
ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A Han character on its own, or a run of other word characters: in English
# mode Chinese text still yields searchable (single-character) terms.
_WORD = re.compile(rf"[{_HAN}]|[^\W{_HAN}]+", re.UNICODE)
_APOSTROPHES = "'\u2019\u02bc"
# Version 2: apostrophes between word characters stay inside the word.
_WORD_V2 = re.compile(rf"[{_HAN}]|[^\W{_HAN}]+(?:[{_APOSTROPHES}][^\W{_HAN}]+)*", re.UNICODE)
def blank_non_word_table(*, keep: str = "_", lower: bool = False) -> bytes:
    """A ``bytes.translate`` table: ASCII characters that are neither
    alphanumeric nor in ``keep`` become spaces (upper case lowered with
    ``lower``); bytes >= 128 stay as they are."""

    def mapped(code: int) -> int:
        ch = chr(code)
        if not (ch.isalnum() or ch in keep):
            return ord(" ")
        return ord(ch.lower()) if lower else code

    return bytes(map(mapped, range(128))) + bytes(range(128, 256))


# Faster still on ASCII text without apostrophes (both versions' words are then
# the runs of [A-Za-z0-9_]): blank everything else in one translate, then split.
# Tables on bytes (10x faster than str.translate) that leave bytes >= 128
# alone, so they apply to UTF-8 too; version 2 keeps the apostrophe.
_BLANK_NON_WORD = blank_non_word_table()
_BLANK_NON_WORD_V2 = blank_non_word_table(keep="_'")
# Clitics dropped from the end of a word (lower case, after the apostrophe).
CLITICS = frozenset({"s", "ll", "re", "ve", "d", "m"})
# jieba splits at the apostrophe, so "don't" arrives as don + t there.
_JIEBA_CLITICS = CLITICS | {"t"}
# Milvus rejects a BM25 input token longer than this; such tokens are noise anyway.
_MAX_TERM_CHARS = 64


def runs_to_words(runs: list[str], words_of: Callable[[str], list[str]], *, apostrophe: bool = False) -> list[str]:
    """``runs`` (a text split at blanked ASCII non-word characters and white
    space) with each run that holds a non-ASCII character (or, with
    ``apostrophe``, an ASCII apostrophe) replaced by ``words_of(run)``; the
    other runs are words as they stand. The runs to replace are found by
    mapping in C, with no Python step per run: most are plain ASCII words."""
    special = map(operator.not_, map(str.isascii, runs))
    if apostrophe:
        special = map(operator.or_, special, map(operator.contains, runs, itertools.repeat("'")))
    words: list[str] = []
    start = 0
    for at in itertools.compress(itertools.count(), special):
        words += runs[start:at]
        words += words_of(runs[at])
        start = at + 1
    if not start:
        return runs
    words += runs[start:]
    return words


def _has_apostrophe(text: str) -> bool:
    # One substring search per apostrophe kind, not a step per character; an
    # ASCII text (a flag the string carries) can hold only the ASCII one.
    if text.isascii():
        return "'" in text
    return any(apostrophe in text for apostrophe in _APOSTROPHES)


# Hit texts whose distinct (term, surface) pairs, or distinct words, are kept
# for highlighting (the words as a tuple of the copies the word index holds
# anyway: about 1 KB a text, plus the text as the key).
_CACHED_TEXTS = 2048
# Words whose terms are kept for highlighting before the index starts afresh.
_KNOWN_WORDS = 1 << 18


class _SurfaceIndex:
    """The words analysed so far for highlighting, and for each term the words
    that give it. Only for words that are their own surface (no jieba, no
    apostrophe), whose term depends on the word alone. A word is marked known
    only after it is filed under its term, so a reader never misses it.
    ``known`` maps each word to the one copy of it the index holds, which the
    cached texts' word tuples share."""

    __slots__ = ("known", "words_of")

    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self.words_of: dict[str, set[str]] = {}


class _TextWords:
    """A text's distinct words in order of first occurrence, and the index
    they were all filed in (None before; once filed, the words are the
    index's copies)."""

    __slots__ = ("index", "words")

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words
        self.index: _SurfaceIndex | None = None


class SurfaceMatcher:
    """``Analyzer.matched_surfaces`` for the texts of one query: the words of
    the query's terms are gathered once, and each text's words are intersected
    with them (set operations in C) instead of each word's term being looked up."""

    def __init__(self, analyzer: Analyzer, query_terms: set[str]) -> None:
        self._analyzer = analyzer
        self._terms = frozenset(query_terms)
        self._index: _SurfaceIndex | None = None
        self._index_size = -1
        self._surfaces: set[str] = set()

    def __call__(self, text: str) -> tuple[str, ...]:
        analyzer = self._analyzer
        if analyzer.config.language == "zh" or (analyzer.config.version != 1 and _has_apostrophe(text)):
            return analyzer._matched_pairs(text, self._terms)
        entry = analyzer._text_words(text)
        index = analyzer._file_words(entry)
        # Gathered again whenever the index grew (this text's new words, or
        # another thread's) or started afresh; the size is read first, so a
        # word filed meanwhile only makes the next call gather again.
        if index is not self._index or len(index.known) != self._index_size:
            self._index_size = len(index.known)
            self._surfaces = set().union(*(index.words_of.get(term, ()) for term in self._terms))
            self._index = index
        # The text's words in order, kept where they are surfaces (in C).
        return tuple(filter(self._surfaces.__contains__, entry.words))


class Analyzer:
    """Turns text into normalised terms and their character spans."""

    def __init__(self, config: AnalyzerConfig) -> None:
        self.config = config
        if config.user_dict is not None and not Path(config.user_dict).is_file():
            raise ConfigError(f"AnalyzerConfig.user_dict: no such file {config.user_dict!r}")
        # Normalising a word is a pure function of the word and this config, and
        # the same words recur endlessly (every hit's text is re-analysed to
        # report matched terms): memoise it per analyzer.
        self._normalise = lru_cache(maxsize=1 << 18)(self._normalise_word)
        # The same chunks come back as hits query after query, and analysing a
        # chunk (jieba above all) costs far more than the search itself.
        self._surface_pairs = lru_cache(maxsize=_CACHED_TEXTS)(self._distinct_surface_pairs)
        self._word_pair = lru_cache(maxsize=1 << 18)(self._analysed_word)
        self._text_words = lru_cache(maxsize=_CACHED_TEXTS)(lambda text: _TextWords(tuple(self._distinct_words(text))))
        self._surface_index = _SurfaceIndex()

    @cached_property
    def _stemmer(self):  # noqa: ANN202 - snowballstemmer has no types
        import snowballstemmer

        stemmer = snowballstemmer.stemmer("english")
        # PyStemmer's own cache (10,000 words) costs 3x its stemming once a
        # collection has more distinct words, and _normalise memoises anyway.
        if hasattr(stemmer, "maxCacheSize"):
            stemmer.maxCacheSize = 0
        return stemmer

    @cached_property
    def _jieba(self):  # noqa: ANN202
        import jieba

        # A private Tokenizer, so a user dictionary never leaks into other
        # collections (or other libraries) that use jieba's global instance.
        tokenizer = jieba.Tokenizer()
        if self.config.user_dict is not None:
            tokenizer.load_userdict(self.config.user_dict)
        return tokenizer

    def _normalise_word(self, surface: str) -> str | None:
        term = unicodedata.normalize("NFKC", surface).lower().strip()
        # isalnum() first: one C call settles the common case (a plain word).
        if not term or len(term) > _MAX_TERM_CHARS or not (term.isalnum() or any(ch.isalnum() for ch in term)):
            return None
        if term.isascii():
            if self.config.stopwords and term in ENGLISH_STOPWORDS:
                return None
            if self.config.stem and term.isalpha():
                term = self._stemmer.stemWord(term)
        return term

    def term_spans(self, text: str) -> Iterator[tuple[str, int, int]]:
        """(term, start, end) for every term, in text order; spans index ``text``."""
        if self.config.language == "zh":
            # Search mode also emits the shorter words inside long compounds, so
            # a query for 数据 finds 数据库 (the usual choice for indexing Chinese).
            for surface, start, end in self._jieba.tokenize(text, mode="search"):
                if (
                    self.config.version >= 2
                    and surface.lower() in _JIEBA_CLITICS
                    and self._after_apostrophe_in_word(text, start)
                ):
                    continue
                term = self._normalise(surface)
                if term is not None:
                    yield term, start, end
            return
        if self.config.version == 1:
            for match in _WORD.finditer(text):
                term = self._normalise(match.group())
                if term is not None:
                    yield term, match.start(), match.end()
            return
        for match in _WORD_V2.finditer(text):
            surface, start = match.group(), match.start()
            if not any(ch in _APOSTROPHES for ch in surface):
                term = self._normalise(surface)
                if term is not None:
                    yield term, start, match.end()
                continue
            yield from self._apostrophe_word(surface, start)

    def _apostrophe_word(self, surface: str, start: int) -> Iterator[tuple[str, int, int]]:
        """One word holding apostrophes: its clitic dropped, the rest joined."""
        parts = re.split(f"[{_APOSTROPHES}]", surface)
        end = start + len(surface)
        if len(parts) > 1 and parts[-1].lower() in CLITICS:
            end -= len(parts[-1]) + 1
            parts = parts[:-1]
        term = self._normalise("".join(parts))
        if term is not None:
            yield term, start, end

    def _after_apostrophe_in_word(self, text: str, start: int) -> bool:
        return start >= 2 and text[start - 1] in _APOSTROPHES and text[start - 2].isalnum()

    def tokenize(self, text: str) -> list[str]:
        return [term for term, _, _ in self.term_spans(text)]

    def index_text(self, text: str) -> str:
        """The string stored for Milvus's BM25 function (whitespace-split there)."""
        return " ".join(self.tokenize(text))

    def matched_surfaces(self, text: str, query_terms: set[str]) -> tuple[str, ...]:
        """The distinct surface strings in ``text`` whose terms occur in the
        query, in order of first occurrence (for many texts of one query,
        ``surface_matcher`` is faster)."""
        return SurfaceMatcher(self, query_terms)(text)

    def surface_matcher(self, query_terms: set[str]) -> SurfaceMatcher:
        """``matched_surfaces`` for the query terms, as a function of the text."""
        return SurfaceMatcher(self, query_terms)

    def _matched_pairs(self, text: str, query_terms: frozenset[str]) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for term, surface in self._surface_pairs(text):
            if term in query_terms:
                seen.setdefault(surface, None)
        return tuple(seen)

    def _file_words(self, entry: _TextWords) -> _SurfaceIndex:
        """The highlighting index, with every word of ``entry`` filed in it."""
        index = self._surface_index
        if entry.index is index:
            return index
        if len(index.known) >= _KNOWN_WORDS:
            index = self._surface_index = _SurfaceIndex()
        known = index.known
        for word in set(entry.words).difference(known):
            term = self._normalise(word)
            if term is not None:
                index.words_of.setdefault(term, set()).add(word)
            known.setdefault(word, word)
        entry.words = tuple(map(known.__getitem__, entry.words))
        entry.index = index
        return index

    def _distinct_surface_pairs(self, text: str) -> tuple[tuple[str, str], ...]:
        """The distinct (term, surface) pairs of ``text`` in order of first
        occurrence: those of ``term_spans``."""
        if self.config.language == "zh":
            return tuple(dict.fromkeys((term, text[start:end]) for term, start, end in self.term_spans(text)))
        # Outside jieba a word's (term, surface) depends on the word alone, so
        # each distinct word is analysed once (and cached across texts), with no
        # Python loop over the text's words: 3-4x faster than term_spans.
        return tuple(dict.fromkeys(filter(None, map(self._word_pair, self._distinct_words(text)))))

    def _distinct_words(self, text: str) -> dict[str, None]:
        """The distinct words of ``text`` (outside jieba), in order of first
        occurrence: those of the version's word pattern."""
        version_1 = self.config.version == 1
        table = _BLANK_NON_WORD if version_1 else _BLANK_NON_WORD_V2
        if text.isascii():
            runs = dict.fromkeys(text.encode("ascii").translate(table).decode("ascii").split())
            if version_1 or "'" not in text:
                return runs  # each run is a word
        else:
            runs = dict.fromkeys(
                text.encode("utf-8", "surrogatepass").translate(table).decode("utf-8", "surrogatepass").split()
            )
        # The blanked ASCII characters and Unicode white space are in no word,
        # so the words are those of the runs between them: the pattern only
        # where a run holds an apostrophe or a non-ASCII character. A word
        # first seen in a run is first seen in that run's first occurrence.
        pattern = _WORD if version_1 else _WORD_V2
        return dict.fromkeys(runs_to_words(list(runs), pattern.findall, apostrophe=not version_1))

    def _analysed_word(self, word: str) -> tuple[str, str] | None:
        """(term, surface) of one word as ``term_spans`` matches it (not jieba)."""
        if self.config.version != 1 and _has_apostrophe(word):
            for term, start, end in self._apostrophe_word(word, 0):
                return term, word[start:end]
            return None
        term = self._normalise(word)
        return None if term is None else (term, word)
