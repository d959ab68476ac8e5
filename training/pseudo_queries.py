"""Pseudo-queries made offline from chunks, for when there are no labels and no LLM.

- ``inverse-cloze``: one sentence of a chunk is the query, the rest of the chunk
  (that sentence removed) the positive, so the model cannot win by matching the
  sentence verbatim (Lee et al., 2019, "Latent Retrieval for Weakly Supervised
  Open Domain Question Answering").
- ``keywords``: a few of the chunk's most distinctive words as a keyword query
  and the whole chunk as the positive. English uses scikit-learn's TF-IDF over
  the corpus; Chinese uses jieba's TF-IDF (``extract_tags``) or TextRank.
- ``title``: the chunk's title as the query (when it has one).

These are weaker than real or LLM-written questions (DESIGN.md: one epoch on
inverse-cloze alone lowered a strong model on a biomedical set), which is why
the evaluation gate refuses a model that got worse.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from hybrid_search.errors import ConfigError
from hybrid_search.types import Chunk

from .runs import check_choice

__all__ = [
    "PseudoKind",
    "KeywordMethod",
    "PseudoQuery",
    "PseudoQueryConfig",
    "split_sentences",
    "inverse_cloze_queries",
    "keyword_queries",
    "title_queries",
    "make_pseudo_queries",
]

PseudoKind = Literal["inverse-cloze", "keywords", "title"]
KeywordMethod = Literal["tfidf", "textrank"]
Language = Literal["en", "zh"]

# A sentence ends at . ! ? followed by space and a capital or digit, or after a
# CJK stop; abbreviations split wrongly now and then, which costs one odd query.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|(?<=[。！？；])")
# Text extracted from PDFs breaks lines mid-sentence: only a blank line is a
# hard boundary, a single line break is a space.
_PARAGRAPH = re.compile(r"\n\s*\n")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class PseudoQueryConfig:
    """Which pseudo-queries to make and how many per chunk."""

    kinds: tuple[PseudoKind, ...] = ("inverse-cloze", "keywords")
    per_chunk: int = 2  # of each kind
    min_sentence_words: int = 6  # shorter sentences (headings, table cells) make poor queries
    min_rest_words: int = 20  # the positive must keep enough text to be findable
    keywords_per_query: int = 4
    keyword_pool: int = 10  # each keyword query samples from the chunk's top terms
    keyword_method: KeywordMethod = "tfidf"
    language: Language = "en"
    seed: int = 42

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ConfigError("PseudoQueryConfig.kinds must name at least one kind")
        for kind in self.kinds:
            check_choice("PseudoQueryConfig", "kinds", kind, get_args(PseudoKind))
        check_choice("PseudoQueryConfig", "keyword_method", self.keyword_method, get_args(KeywordMethod))
        check_choice("PseudoQueryConfig", "language", self.language, get_args(Language))
        for name in ("per_chunk", "min_sentence_words", "keywords_per_query", "keyword_pool"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PseudoQueryConfig.{name} must be >= 1; got {getattr(self, name)!r}")
        if self.min_rest_words < 0:
            raise ConfigError("PseudoQueryConfig.min_rest_words must be >= 0")
        if self.keyword_pool < self.keywords_per_query:
            raise ConfigError("PseudoQueryConfig.keyword_pool must be >= keywords_per_query")


@dataclass(frozen=True)
class PseudoQuery:
    query: str
    positive: str
    chunk_id: str
    kind: str


def _count_words(text: str) -> int:
    # A Han character carries about a word's meaning; count it as one.
    return len(_HAN.findall(text)) + len([w for w in _WORD.findall(text) if not _HAN.search(w)])


def split_sentences(text: str) -> list[str]:
    sentences = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = " ".join(paragraph.split())
        sentences.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s and s.strip())
    return sentences


def inverse_cloze_queries(chunk: Chunk, config: PseudoQueryConfig, rng: random.Random) -> list[PseudoQuery]:
    sentences = split_sentences(chunk.text)
    candidates = [i for i, s in enumerate(sentences) if _count_words(s) >= config.min_sentence_words]
    rng.shuffle(candidates)
    found = []
    for index in candidates:
        rest = " ".join(s for i, s in enumerate(sentences) if i != index)
        if _count_words(rest) < config.min_rest_words:
            continue
        found.append(PseudoQuery(sentences[index], rest, chunk.id, "inverse-cloze"))
        if len(found) >= config.per_chunk:
            break
    return found


def _english_top_terms(chunks: Sequence[Chunk], pool: int) -> list[list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Words of 3+ letters that are not in more than half the chunks: corpus-wide
    # words ("company", "fiscal") are what every chunk shares, not what finds one.
    vectorizer = TfidfVectorizer(
        stop_words="english", token_pattern=r"(?u)\b[^\W\d_][\w\-]{2,}\b", max_df=0.5 if len(chunks) > 4 else 1.0, sublinear_tf=True
    )
    matrix = vectorizer.fit_transform([c.text for c in chunks])
    vocabulary = vectorizer.get_feature_names_out()
    terms = []
    for row in range(matrix.shape[0]):
        line = matrix.getrow(row)
        order = line.data.argsort()[::-1][:pool]
        terms.append([str(vocabulary[line.indices[i]]) for i in order])
    return terms


def _chinese_top_terms(chunks: Sequence[Chunk], pool: int, method: KeywordMethod) -> list[list[str]]:
    import jieba.analyse

    extract = jieba.analyse.extract_tags if method == "tfidf" else jieba.analyse.textrank
    return [list(extract(c.text, topK=pool)) for c in chunks]


def keyword_queries(chunks: Sequence[Chunk], config: PseudoQueryConfig, rng: random.Random) -> list[PseudoQuery]:
    """Keyword queries for every chunk, computed over the chunks together (IDF)."""
    if not chunks:
        return []
    if config.language == "zh":
        pools = _chinese_top_terms(chunks, config.keyword_pool, config.keyword_method)
    else:
        pools = _english_top_terms(chunks, config.keyword_pool)
    joiner = "" if config.language == "zh" else " "
    found = []
    for chunk, pool in zip(chunks, pools):
        if len(pool) < min(2, config.keywords_per_query):
            continue
        seen: set[str] = set()
        for _ in range(config.per_chunk * 3):  # a few tries to get distinct queries
            if len(seen) >= config.per_chunk:
                break
            picked = rng.sample(pool, min(config.keywords_per_query, len(pool)))
            # Keep the chunk's own order of importance: queries read less random.
            picked.sort(key=pool.index)
            query = joiner.join(picked)
            if query not in seen:
                seen.add(query)
                found.append(PseudoQuery(query, chunk.text, chunk.id, "keywords"))
    return found


def title_queries(chunks: Sequence[Chunk]) -> list[PseudoQuery]:
    found = []
    for chunk in chunks:
        title = chunk.title.strip()
        if not title or _count_words(title) < 3:
            continue
        # When the title was prepended to the text, drop it from the positive:
        # otherwise the pair teaches nothing but exact matching.
        body = chunk.text.strip()
        if body.startswith(title):
            body = body[len(title) :].strip()
        if body:
            found.append(PseudoQuery(title, body, chunk.id, "title"))
    return found


def make_pseudo_queries(chunks: Sequence[Chunk], config: PseudoQueryConfig) -> list[PseudoQuery]:
    """All configured pseudo-queries for ``chunks``, deterministic for a seed."""
    rng = random.Random(config.seed)
    found: list[PseudoQuery] = []
    if "inverse-cloze" in config.kinds:
        for chunk in chunks:
            found.extend(inverse_cloze_queries(chunk, config, rng))
    if "keywords" in config.kinds:
        found.extend(keyword_queries(chunks, config, rng))
    if "title" in config.kinds:
        found.extend(title_queries(chunks))
    return found
