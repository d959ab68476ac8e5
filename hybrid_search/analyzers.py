"""Text analysis for BM25: text in, terms out.

Terms are produced here, on the client, and stored space-joined in a field that
Milvus's BM25 function reads with its ``whitespace`` tokenizer. That keeps Milvus
(Lite or server, any version), query highlighting and the rank-bm25 reference
on exactly the same terms, and lets Chinese users bring a jieba user dictionary
(which Milvus Lite 2.5's built-in jieba tokenizer rejects).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import cached_property, lru_cache
from pathlib import Path

from .config import AnalyzerConfig
from .errors import ConfigError

__all__ = ["Analyzer", "ENGLISH_STOPWORDS"]

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
# Milvus rejects a BM25 input token longer than this; such tokens are noise anyway.
_MAX_TERM_CHARS = 64


# Hit texts whose distinct (term, surface) pairs are kept for highlighting
# (a few hundred short strings each).
_CACHED_TEXTS = 2048


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

    @cached_property
    def _stemmer(self):  # noqa: ANN202 - snowballstemmer has no types
        import snowballstemmer

        return snowballstemmer.stemmer("english")

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
        if not term or len(term) > _MAX_TERM_CHARS or not any(ch.isalnum() for ch in term):
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
                term = self._normalise(surface)
                if term is not None:
                    yield term, start, end
            return
        for match in _WORD.finditer(text):
            term = self._normalise(match.group())
            if term is not None:
                yield term, match.start(), match.end()

    def tokenize(self, text: str) -> list[str]:
        return [term for term, _, _ in self.term_spans(text)]

    def index_text(self, text: str) -> str:
        """The string stored for Milvus's BM25 function (whitespace-split there)."""
        return " ".join(self.tokenize(text))

    def matched_surfaces(self, text: str, query_terms: set[str]) -> tuple[str, ...]:
        """The distinct surface strings in ``text`` whose terms occur in the query."""
        seen: dict[str, None] = {}
        for term, surface in self._surface_pairs(text):
            if term in query_terms:
                seen.setdefault(surface, None)
        return tuple(seen)

    def _distinct_surface_pairs(self, text: str) -> tuple[tuple[str, str], ...]:
        pairs: dict[tuple[str, str], None] = {}
        for term, start, end in self.term_spans(text):
            pairs.setdefault((term, text[start:end]), None)
        return tuple(pairs)
